"""Register-level emulators of the hardware our drivers talk to.

A driver is tested against a model of the chip that does the chip's arithmetic on a simulated
physical input, never against canned register values (STYLE §16): only then can a wrong formula,
a wrong LSB or a missing byte swap fail a test. The emulators speak the same bus calls as the real
transports (smbus2, MicroPython ``machine.I2C``), byte for byte.
"""

from devices.emulators.ina219 import EmulatedSMBus, I2CTransfer, INA219Chip

__all__ = ["EmulatedSMBus", "I2CTransfer", "INA219Chip"]
