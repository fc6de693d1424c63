"""A phone's facts from getprop and sysfs text in the forms the phone prints them (getprop.cpp's
``[key]: [value]``, cpufreq and thermal sysfs files), under the keys a Linux device's facts use."""

from __future__ import annotations

from agent.android.facts import parse_getprop, phone_facts

GETPROP = """\
[dalvik.vm.heapsize]: [512m]
[ro.board.platform]: [taro]
[ro.build.fingerprint]: [google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys]
[ro.build.version.release]: [14]
[ro.build.version.sdk]: [34]
[ro.build.version.security_patch]: [2024-02-05]
[ro.hardware]: [panther]
[ro.product.cpu.abi]: [arm64-v8a]
[ro.product.manufacturer]: [Google]
[ro.product.model]: [Pixel 7]
[ro.soc.model]: [GS201]
[persist.sys.empty]: []
[ro.odd.value]: [has ] inside]
"""


def test_getprop_lines_become_properties_empty_values_and_brackets_included():
    props = parse_getprop(GETPROP + "a wrapped continuation line\n")
    assert props["ro.product.model"] == "Pixel 7" and props["persist.sys.empty"] == ""
    assert props["ro.odd.value"] == "has ] inside" and len(props) == 13


def test_phone_facts_use_the_keys_a_linux_device_has_and_add_the_android_ones():
    cpus = {i: {"cpuinfo_max_freq": "1803000\n", "scaling_governor": "sched_pixel\n"} for i in range(4)}
    cpus |= {4: {"cpuinfo_max_freq": "2348000", "scaling_governor": "sched_pixel"},
             5: {"cpuinfo_max_freq": "2348000", "scaling_governor": "sched_pixel"},
             6: {"cpuinfo_max_freq": "2850000", "scaling_governor": "performance"},
             7: {"cpuinfo_max_freq": "2850000", "scaling_governor": "performance"}}
    facts = phone_facts(parse_getprop(GETPROP), cpus, {"skin-therm": "35123\n", "battery": "-1200", "bad": "n/a"},
                        {"capacity": "87\n", "status": "Discharging", "current_now": ""}, "5.10.157-android13\n")
    assert facts["board"] == "Google Pixel 7" and facts["soc"] == facts["cpu_model"] == "GS201"  # ro.soc.model first
    assert (facts["android_release"], facts["android_sdk"], facts["security_patch"]) == ("14", "34", "2024-02-05")
    assert facts["arch"] == "aarch64" and facts["os"] == "Android" and facts["kernel"] == "5.10.157-android13"
    assert facts["cpu_count_logical"] == 8
    assert facts["cpu_clusters"] == [{"cores": [6, 7], "max_mhz": 2850, "governor": "performance"},
                                     {"cores": [4, 5], "max_mhz": 2348, "governor": "sched_pixel"},
                                     {"cores": [0, 1, 2, 3], "max_mhz": 1803, "governor": "sched_pixel"}]
    assert facts["cpu_governor"] == "performance,sched_pixel" and facts["cpu_freq_mhz"] == {"max": 2850}
    assert facts["temperatures_c"] == {"skin-therm": 35.123, "battery": -1.2}  # an unreadable zone is left out
    assert facts["battery"] == {"capacity": "87", "status": "Discharging"}


def test_a_phone_that_says_little_gets_only_what_it_said():
    facts = phone_facts({"ro.product.model": "Phone", "ro.hardware": "qcom"})
    assert facts == {"os": "Android", "python": None, "board": "Phone", "soc": "qcom", "cpu_model": "qcom"}

