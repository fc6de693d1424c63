"""The provenance record inside a model file: how ``edgeperf quantize`` made it, kept in the file's own metadata.

The record (``agent.contract.Provenance``) is written beside the file as JSON too, but a sidecar
does not travel: the fleet's artifact server serves a model by its sha256 alone, a user copies
the one file, a cache keeps only the file. Inside the file's own key-value metadata, under
``PROVENANCE_KEY``, the record goes wherever the bytes go, and every result that benchmarks the
file carries it (``model.provenance``), read by the runtime session that loads the model
(``SessionInfo.metadata``) at no extra parsing cost.

Where each format keeps it (UTF-8 JSON text, the same bytes as the sidecar):

- ONNX: an entry of the model's ``metadata_props``;
- TFLite: an entry of the flatbuffer's ``Model.metadata`` list naming a buffer that holds the text;
- Core ML: an entry of the model description's ``user_defined_metadata``.

Embedding changes the file, so its sha256 is that of the file with its record. A file from
elsewhere may carry anything under that key: ``from_metadata`` never raises, a record that breaks
the contract is left out of the result with a warning that says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from agent.contract import PROVENANCE_KEY, Provenance
from agent.errors import ModelError

__all__ = ["PROVENANCE_KEY", "embed", "from_metadata"]

_TFLITE_IDENTIFIER = b"TFL3"
_TFLITE_ALIGN = 16  # the TFLite schema's Buffer.data (force_align: 16)


def embed(path: Path, record: Provenance) -> None:
    """Write ``record`` into the model file's own metadata under ``PROVENANCE_KEY``, in place,
    replacing any earlier record; the runtime library of the format is imported here, not before."""
    path = Path(path)
    text = msgspec.json.encode(record).decode()
    suffix = path.suffix.lower()
    writers = {".onnx": _embed_onnx, ".tflite": _embed_tflite, ".mlpackage": _embed_coreml, ".mlmodel": _embed_coreml}
    if suffix not in writers:
        raise ModelError(f"{path.name}: cannot embed a provenance record in a {suffix or '(no extension)'!r} file; "
                         "edgeperf embeds it in .onnx, .tflite, .mlpackage and .mlmodel models")
    if not path.exists():
        raise ModelError(f"model file {str(path)!r} not found; cannot embed its provenance record")
    writers[suffix](path, text)


def from_metadata(metadata: Mapping[str, str]) -> tuple[Provenance | None, str | None]:
    """The record in a model's key-value metadata (``SessionInfo.metadata``) and a warning: (None, None)
    when there is none, (None, why) when the entry breaks the contract (a third-party file may carry
    junk under the key: the run goes on without it)."""
    text = metadata.get(PROVENANCE_KEY)
    if text is None:
        return None, None
    try:
        return msgspec.json.decode(text, type=Provenance), None
    except (msgspec.DecodeError, RecursionError, ValueError, TypeError) as exc:
        problem = str(exc).replace("`", "").strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        return None, (f"the model's {PROVENANCE_KEY} metadata is not a valid provenance record ({problem}); "
                      "the result carries none")


# --- ONNX -----------------------------------------------------------------------------------------


def _embed_onnx(path: Path, text: str) -> None:
    try:
        import onnx
    except ImportError:
        raise ModelError("embedding a record in an ONNX model needs onnx: pip install 'edgeperf[onnx]'") from None
    try:  # external data stays where it is: tensors keep their references, relative to this folder
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError, onnx's own errors
        raise ModelError(f"{path} is not a loadable ONNX model ({_first(exc)}); cannot embed its provenance") from None
    kept = [p for p in model.metadata_props if p.key != PROVENANCE_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=PROVENANCE_KEY, value=text)
    with _replacing_file(path) as tmp:
        onnx.save(model, str(tmp))


# --- TFLite ---------------------------------------------------------------------------------------


def _embed_tflite(path: Path, text: str) -> None:
    try:
        import flatbuffers
        import numpy as np
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise ModelError("embedding a record in a TFLite model needs ai-edge-litert (its flatbuffer schema): "
                         "pip install 'edgeperf[litert]'") from None
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelError(f"{path} is not a TFLite flatbuffer (no {_TFLITE_IDENTIFIER.decode()} identifier); "
                         "cannot embed its provenance")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # a truncated or corrupt flatbuffer reads past its end
        raise ModelError(f"{path} is not a readable TFLite model ({_first(exc)}); cannot embed its provenance") from None
    buffers = list(model.buffers or [])
    if any(b.offset > 1 for b in buffers):  # weights stored after the flatbuffer (models over 2 GB), by file offset
        raise ModelError(f"{path} keeps its weights outside the flatbuffer (a model over 2 GB); "
                         "edgeperf cannot rewrite such a file to embed its provenance")
    payload = np.frombuffer(text.encode(), dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if _name(m.name) != PROVENANCE_KEY]
    # an earlier record's buffer is reused, or emptied where there were several: buffers are named by
    # index (tensors, other entries), so none is removed; one the record shares with others is left alone
    own = [m.buffer for m in (model.metadata or []) if _name(m.name) == PROVENANCE_KEY
           and 0 < m.buffer < len(buffers) and not _buffer_shared(model, m.buffer, entries)]
    for index in own:
        buffers[index].data = None
    entry = schema.MetadataT()
    entry.name = PROVENANCE_KEY
    if own:
        entry.buffer = own[0]
    else:
        entry.buffer = len(buffers)
        buffers.append(schema.BufferT())
    buffers[entry.buffer].data = payload
    buffers[entry.buffer].offset = buffers[entry.buffer].size = 0
    model.buffers = [_AlignedBuffer.of(b, schema) for b in buffers]
    model.metadata = [*entries, entry]
    builder = flatbuffers.Builder(len(data) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
    with _replacing_file(path) as tmp:
        tmp.write_bytes(builder.Output())


def _name(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def _buffer_shared(model: Any, index: int, entries: list[Any]) -> bool:
    """Whether buffer ``index`` is also a tensor's or another metadata entry's."""
    if any(m.buffer == index for m in entries):
        return True
    return any(t.buffer == index for g in model.subgraphs or [] for t in g.tensors or [])


class _AlignedBuffer:
    """Packs a ``BufferT`` with its data aligned to 16 bytes, as the schema asks (``force_align: 16``),
    which the generated Python object API ignores: rewritten weights are never less aligned than before."""

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer

    @classmethod
    def of(cls, buffer: Any, schema: Any) -> Any:
        return cls(buffer) if isinstance(buffer, schema.BufferT) else buffer

    def Pack(self, builder: Any) -> int:  # the object API calls it by this name
        data = self._buffer.data
        if data is not None and len(data):
            builder.Prep(_TFLITE_ALIGN, len(data))  # the vector's bytes start on a 16-byte boundary
        return self._buffer.Pack(builder)


# --- Core ML --------------------------------------------------------------------------------------


def _embed_coreml(path: Path, text: str) -> None:
    try:
        import coremltools
    except ImportError:
        raise ModelError("embedding a record in a Core ML model needs coremltools: pip install 'edgeperf[coreml]'") from None
    try:  # reading and saving a package works on Linux too: only predicting needs macOS
        model = coremltools.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:  # coremltools raises bare Exception / RuntimeError on bad packages
        raise ModelError(f"{path} is not a readable Core ML model ({_first(exc)}); cannot embed its provenance") from None
    model.user_defined_metadata[PROVENANCE_KEY] = text
    if path.is_dir():
        with _replacing_folder(path) as tmp:
            model.save(str(tmp))
    else:
        with _replacing_file(path) as tmp:
            model.save(str(tmp))


# --- replacing in place ---------------------------------------------------------------------------


@contextlib.contextmanager
def _replacing_file(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` (same suffix, same folder) that replaces it atomically once
    written; an error leaves the original untouched."""
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with contextlib.suppress(OSError):
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _replacing_folder(path: Path) -> Iterator[Path]:
    """A temporary sibling folder name for ``path`` that takes its place once written: the old folder
    is moved aside first, and put back if the swap fails."""
    work = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        tmp = work / path.name
        yield tmp
        aside = work / "previous"
        os.replace(path, aside)
        try:
            os.replace(tmp, path)
        except OSError:
            os.replace(aside, path)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
