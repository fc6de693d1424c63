"""The adb device emulator's ``shell:CMD`` and ``exec:CMD`` services: not ``/bin/sh`` on the host
but a small interpreter of the parts of Android's mksh (R59c, ``external/mksh``) and toybox a bridge
uses, each from its source.

Why an interpreter: a host shell would answer with its own syntax, messages and exit statuses, so a
bridge tested against it could pass and still fail on a phone. Why a module of its own: the
interpreter is a program of its own that only runs inside a stream the transport (``adb_device``)
opened, and reaches the device only through its file system, properties, registered programs and
the shell user's permission checks (all on ``AdbDevice``, described there).

Words with '…', "…" and \\ quoting; ``$?`` and ``$EPOCHREALTIME`` (also as ``${…}``; var.c: the
host's gettimeofday as ``%u.%06u``); lists joined by ``;``, ``&``, ``&&``, ``||`` and newlines;
``! CMD``; ``while LIST; do LIST; done`` and ``until`` (exec.c TWHILE: status 0 when the body never
ran, else the body's last), with redirections after ``done`` applying to the whole loop;
redirections ``>``, ``>>``, ``N>`` and ``N>&M`` applied in order (exec.c iosetup; a failed one prints
``/system/bin/sh: can't create PATH: strerror`` and fails the command with status 1). Parsing follows
syn.c: a -c string runs line by line, each line parsed whole first; syntax errors are yyerror's
``/system/bin/sh: syntax error: unexpected 'TOKEN'`` / ``unexpected EOF`` / ``unmatched 'while'`` and
``no closing quote`` (status 1, the shell stops).

``CMD &`` runs CMD in a child shell on a thread of its own (a forked subshell on the phone) with a
copy of the file descriptors and ``$?``; ``$?`` is then 0 and the shell goes on. ``wait`` (no
operands) waits for this shell's jobs, status 0. A job keeps the adb stream open until it ends
(adbd reads its end until every writer has closed it) unless it is a simple command whose own
redirections move both 1 and 2 off the stream — a loop keeps a saved copy of what it redirects
(exec.c savefd). When the stream is lost (``unplug()``), adbd SIGHUPs the shell alone: the foreground
shell ends at its next command, ``sleep`` tick or ``wait`` tick; a background job goes on (an
unplugged phone keeps running) and ends at its next write to the lost stream, as SIGPIPE would end
it. ``AdbDevice.stop()`` (the phone switched off) ends every shell and job at its next command, loop
pass or sleep tick, and returns once they have. (Background jobs outliving the stream follow a
``shell_v2`` session; under the legacy PTY this emulator's protocol selects, the kernel's hangup
would SIGHUP the whole process group, which is not modelled.)

Builtins: ``echo``, ``true``, ``:``, ``false``, ``exit``, ``wait``, ``sleep`` (mksh's, built with
HAVE_SELECT: ``SECONDS[.FRACTION]``, else ``sleep: syntax error``), and ``test`` / ``[`` (funcs.c
c_test: POSIX's rules for up to four operands, then test_parse; ``-e -f -d -s -r -w -x -n -z``,
``= == != -eq -ne -lt -le -gt -ge``, ``!``, ``-a``, ``-o``, ``( )``; an error is
``/system/bin/sh: [: OPERAND: MESSAGE`` with status 2; another operator, or an arithmetic operand
that is not a plain number, is "not supported"). Programs: ``getprop`` (all properties as
``[key]: [value]``, or one value), ``cat``, ``ls``, ``mkdir``, ``rm``, ``chmod`` and ``sha256sum``
(toybox md5sum.c: ``HASH  PATH`` per file), with toybox's "NAME: PATH: strerror" errors. A command
that is not found prints mksh's ``/system/bin/sh: NAME: inaccessible or not found`` (``exec.c``,
``sh.h`` Tinacc_not_found) with status 127. Pipes, ``if``/``for``/``case``, variables and other
parameters, other mksh builtins and anything else unsupported print an ``adb emulator: … not
supported`` line with status 2, so a test sees it instead of a silent wrong answer.

Nothing here was captured from a real phone: every reply is built from the sources above. On Android
``cat`` without options is mksh's builtin (funcs.c ``!cat``, LOW_BI), so its errors read
``/system/bin/sh: cat: PATH: strerror``, not toybox's ``cat: PATH: strerror``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from devices.emulators.adb_closed import Closed

if TYPE_CHECKING:
    from devices.emulators.adb_device import AdbDevice, Stream

__all__ = ["shell_service"]

SH = "/system/bin/sh"
# mksh's reserved words (syn.c tokentab): recognised only where a command starts, and only unquoted
_RESERVED = frozenset(
    ["if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done", "in",
     "function", "time", "{", "}", "!", "[["]
)
# mksh builtins (funcs.c mkshbuiltins) the emulator does not model: "not supported", never "not found"
_UNMODELLED_BUILTINS = frozenset(
    [".", "alias", "break", "builtin", "cd", "chdir", "command", "continue", "eval", "exec", "export", "fc",
     "getopts", "jobs", "kill", "let", "print", "pwd", "read", "readonly", "realpath", "rename", "return", "set",
     "shift", "source", "suspend", "times", "trap", "typeset", "ulimit", "umask", "unalias", "unset", "whence",
     "bg", "fg", "bind", "printf"]
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


class _Unsupported(Exception):
    pass


class _ShSyntaxError(Exception):
    """What mksh's yyerror prints after "/system/bin/sh: "; the shell then exits with status 1."""


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Stopped(Exception):
    """``AdbDevice.stop()``: the phone is off, so every shell and background job ends at once."""


class _Word:
    """A shell word: its parts as (text, how), how being "plain" (unquoted), "dq" ("...") or "lit" ('...', \\x)."""

    def __init__(self, parts: list[tuple[str, str]], raw: str) -> None:
        self.parts, self.raw = parts, raw

    @property
    def plain(self) -> str | None:
        """The word's text if it is one unquoted run (a reserved word can only be such a word)."""
        return self.parts[0][0] if len(self.parts) == 1 and self.parts[0][1] == "plain" else None


def _tokenize(text: str) -> list[tuple[str, object]]:
    """Words, operators (";", "\\n", "&", "&&", "||", "|", ...) and redirections, as mksh's lexer splits a
    command line. A lexical error becomes an ("error", exception) token, so the lines before it still run."""
    tokens: list[tuple[str, object]] = []
    parts: list[tuple[str, str]] = []
    in_word = False
    start = 0
    i, n = 0, len(text)

    def end_word(at: int) -> None:
        nonlocal parts, in_word
        if in_word:
            tokens.append(("word", _Word(parts, text[start:at])))
        parts, in_word = [], False

    def begin_word() -> None:
        nonlocal in_word, start
        if not in_word:
            in_word, start = True, i

    try:
        while i < n:
            c = text[i]
            if c in " \t":
                end_word(i)
                i += 1
            elif c == "#" and not in_word:
                while i < n and text[i] != "\n":
                    i += 1
            elif c == "\n":
                end_word(i)
                tokens.append(("op", "\n"))
                i += 1
            elif c in ";&|()":
                end_word(i)
                two = text[i : i + 2]
                if c == "&" and text[i + 1 : i + 2] == ">":
                    raise _Unsupported("redirection &>")
                if two in ("&&", "||", ";;", ";&", ";|", "|&"):
                    tokens.append(("op", two))
                    i += 2
                else:
                    tokens.append(("op", c))
                    i += 1
            elif c in "<>":
                # a redirection; a lone unquoted digit word just before it is its file descriptor
                fd = None
                if in_word and len(parts) == 1 and parts[0][1] == "plain" and len(parts[0][0]) == 1 and parts[0][0].isdigit():
                    fd = int(parts[0][0])
                    parts, in_word = [], False
                end_word(i)
                if c == "<":
                    raise _Unsupported("input redirection")
                op = ">>" if text[i : i + 2] == ">>" else ">"
                if text[i : i + 2] == ">|":
                    raise _Unsupported("redirection >|")
                i += len(op)
                unit = 1 if fd is None else fd
                if text[i : i + 1] == "&":
                    j = i + 1
                    while j < n and text[j].isdigit():
                        j += 1
                    if j == i + 1:
                        raise _Unsupported("redirection >& other than >&N")
                    tokens.append(("dup", (unit, int(text[i + 1 : j]), text[i - len(op) : j])))
                    i = j
                else:
                    tokens.append(("redir", (unit, op, op if fd is None else f"{fd}{op}")))
            elif c == "'":
                begin_word()
                j = text.find("'", i + 1)
                if j < 0:
                    raise _ShSyntaxError("no closing quote")
                parts.append((text[i + 1 : j], "lit"))
                i = j + 1
            elif c == '"':
                begin_word()
                i += 1
                buf: list[str] = []
                while True:
                    if i >= n:
                        raise _ShSyntaxError("no closing quote")
                    d = text[i]
                    if d == '"':
                        i += 1
                        break
                    if d == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                        if buf:
                            parts.append(("".join(buf), "dq"))
                            buf = []
                        if text[i + 1] != "\n":
                            parts.append((text[i + 1], "lit"))
                        i += 2
                        continue
                    if d == "`" or text.startswith("$(", i):
                        raise _Unsupported("command substitution")
                    buf.append(d)
                    i += 1
                parts.append(("".join(buf), "dq"))
            elif c == "\\":
                if text[i + 1 : i + 2] == "\n":  # a line continuation
                    i += 2
                    continue
                begin_word()
                if i + 1 < n:
                    parts.append((text[i + 1], "lit"))
                i += 2
            elif c == "`" or text.startswith("$(", i):
                raise _Unsupported("command substitution")
            else:
                begin_word()
                j = i
                while j < n and text[j] not in " \t\n;&|()<>'\"\\`" and not text.startswith("$(", j):
                    j += 1
                parts.append((text[i:j], "plain"))
                i = j
        end_word(i)
    except (_Unsupported, _ShSyntaxError) as exc:
        tokens.append(("error", exc))
    return tokens


def _epochrealtime() -> str:
    """var.c V_EPOCHREALTIME: gettimeofday() as "%u.%06u"."""
    usec = time.time_ns() // 1000
    return f"{usec // 1_000_000}.{usec % 1_000_000:06d}"


def _expand(word: _Word, status: int) -> str:
    """The word's text with $? / ${?} and $EPOCHREALTIME / ${EPOCHREALTIME} substituted (no field
    splitting needed: neither value holds a blank). Any other parameter is not modelled."""
    out = []
    for text, how in word.parts:
        if how == "lit" or "$" not in text:
            out.append(text)
            continue
        k = 0
        while k < len(text):
            ch = text[k]
            if ch != "$" or k + 1 >= len(text):
                out.append(ch)
                k += 1
                continue
            rest = text[k + 1 :]
            if rest.startswith("{"):
                close = rest.find("}")
                name = rest[1:close] if close > 0 else ""
                length = close + 1
            elif rest[0] == "?":
                name, length = "?", 1
            else:
                m = _NAME.match(rest)
                name, length = (m.group(0), len(m.group(0))) if m else (rest[0], 1)
            if name == "?":
                out.append(str(status))
            elif name == "EPOCHREALTIME":
                out.append(_epochrealtime())
            else:
                raise _Unsupported("parameter expansion other than $? and $EPOCHREALTIME")
            k += 1 + length
    return "".join(out)


# the syntax tree: a list is [(and_or, runs_in_background)], an and_or is [(joiner, command)]
class _Simple:
    def __init__(self, words: list[_Word], redirs: list[tuple]) -> None:
        self.words, self.redirs = words, redirs


class _Loop:
    def __init__(self, until: bool, cond: list, body: list, redirs: list[tuple]) -> None:
        self.until, self.cond, self.body, self.redirs = until, cond, body, redirs


class _Bang:
    def __init__(self, command: object) -> None:
        self.command = command


class _AndOr:
    def __init__(self, items: list[tuple[str, object]]) -> None:
        self.items = items


class _Parser:
    """syn.c's recursive descent (c_list, andor, pipeline, get_command, dogroup) over the parts modelled."""

    def __init__(self, tokens: list[tuple[str, object]]) -> None:
        self.tokens, self.i = tokens, 0
        self.nesting: str | None = None  # the reserved word that opened the construct being read

    def peek(self) -> tuple[str, object]:
        if self.i >= len(self.tokens):
            return ("eof", None)
        kind, value = self.tokens[self.i]
        if kind == "error":
            raise value  # type: ignore[misc]
        return kind, value

    def is_op(self, *ops: str) -> bool:
        kind, value = self.peek()
        return kind == "op" and value in ops

    def keyword(self) -> str | None:
        kind, value = self.peek()
        if kind == "word" and value.plain in _RESERVED:  # type: ignore[union-attr]
            return value.plain  # type: ignore[union-attr]
        return None

    def syntax_error(self) -> None:
        """syntaxerr(NULL): "syntax error: unexpected 'TOKEN'"; at the end "unmatched 'while'" or "unexpected EOF"."""
        kind, value = self.peek()
        if kind == "eof":
            if self.nesting:
                raise _ShSyntaxError(f"syntax error: unmatched '{self.nesting}'")
            raise _ShSyntaxError("syntax error: unexpected EOF")
        if kind == "word":
            shown = value.raw  # type: ignore[union-attr]
        elif kind in ("redir", "dup"):
            shown = value[-1]  # type: ignore[index]
        else:
            shown = value
        raise _ShSyntaxError(f"syntax error: unexpected '{shown}'")

    def line(self) -> list | None:
        """One top-level line (yyparse with a -c string): its list, [] for a blank one, None at the end."""
        if self.peek()[0] == "eof":
            return None
        items = self.c_list(multi=False)
        if self.is_op("\n"):
            self.i += 1
        elif self.peek()[0] != "eof":
            self.syntax_error()
        return items or []

    def c_list(self, multi: bool) -> list:
        items: list = []
        while True:
            p = self.and_or()
            if multi and self.is_op("\n"):
                self.i += 1
                if p is not None:
                    items.append((p, False))
                continue
            if p is None:
                break
            if self.is_op("&", ";"):
                items.append((p, self.peek()[1] == "&"))
                self.i += 1
                continue
            if self.is_op("|&"):
                raise _Unsupported("co-processes (|&)")
            items.append((p, False))
            break
        return items

    def and_or(self) -> object | None:
        first = self.pipeline()
        if first is None:
            return None
        items: list[tuple[str, object]] = [("", first)]
        while self.is_op("&&", "||"):
            joiner = str(self.peek()[1])
            self.i += 1
            while self.is_op("\n"):  # CONTIN: a newline may follow && and ||
                self.i += 1
            p = self.pipeline()
            if p is None:
                self.syntax_error()
            items.append((joiner, p))
        return first if len(items) == 1 else _AndOr(items)

    def pipeline(self) -> object | None:
        t = self.command()
        if t is not None and self.is_op("|"):
            raise _Unsupported("pipes (|)")
        return t

    def command(self) -> object | None:
        word = self.keyword()
        if word is not None:
            if word in ("while", "until"):
                self.i += 1
                return self.loop(word)
            if word == "!":
                self.i += 1
                t = self.pipeline()
                if t is None:
                    self.syntax_error()
                return _Bang(t)
            if word in ("do", "done", "then", "else", "elif", "fi", "esac", "}", "in"):
                return None  # ends the list being read; its reader says what is wrong
            raise _Unsupported(f"'{word}'")
        if self.is_op("("):
            raise _Unsupported("subshells ( )")
        words: list[_Word] = []
        redirs: list[tuple] = []
        while True:
            kind, value = self.peek()
            if kind == "word":
                if not words and value.parts[0][1] == "plain" and _ASSIGNMENT.match(value.parts[0][0]):  # type: ignore[union-attr]
                    raise _Unsupported("variable assignments")
                words.append(value)  # type: ignore[arg-type]
                self.i += 1
            elif kind in ("redir", "dup"):
                redirs.append(self.redirection())
            elif kind == "op" and value == "(":
                raise _Unsupported("function definitions")
            else:
                break
        if not words and not redirs:
            return None
        return _Simple(words, redirs)

    def redirection(self) -> tuple:
        kind, value = self.peek()
        self.i += 1
        if kind == "dup":
            unit, target, _ = value  # type: ignore[misc]
            return ("dup", unit, target)
        unit, op, _ = value  # type: ignore[misc]
        if self.peek()[0] != "word":
            self.syntax_error()
        target = self.peek()[1]
        self.i += 1
        return ("file", unit, op, target)

    def loop(self, word: str) -> _Loop:
        outer, self.nesting = self.nesting, word
        cond = self.c_list(multi=True)
        if self.keyword() != "do":
            self.syntax_error()
        self.i += 1
        body = self.c_list(multi=True)
        if self.keyword() != "done":
            self.syntax_error()
        self.i += 1
        self.nesting = outer
        redirs = []
        while self.peek()[0] in ("redir", "dup"):
            redirs.append(self.redirection())
        if not cond or not body:
            raise _Unsupported(f"an empty {word} list")
        return _Loop(word == "until", cond, body, redirs)


class _RedirectFailed(Exception):
    pass


class _CommandEnds(Exception):
    """A command ended before it ran (an unsupported word or redirection: 2; a file that cannot be opened: 1)."""

    def __init__(self, status: int) -> None:
        self.status = status


class _Shell:
    """One mksh: ``run`` a -c string in the foreground; ``&`` starts a child shell (a forked subshell on the
    phone) on a thread of its own. ``fds`` maps 1 and 2 to writers (the stream, a file, /dev/null)."""

    def __init__(self, device: AdbDevice, fds: dict[int, Callable[[bytes], None]], stream_write: Callable[[bytes], None],
                 hangup: Callable[[], bool] | None = None, status: int = 0) -> None:
        self.device, self.fds, self.stream_write, self.hangup = device, fds, stream_write, hangup
        self.status = status
        self.jobs: list[threading.Thread] = []
        self.holding: list[threading.Thread] = []  # jobs that keep the adb stream open

    # the whole -c string
    def run(self, text: str) -> None:
        parser = _Parser(_tokenize(text))
        try:
            while True:
                try:
                    items = parser.line()
                except _ShSyntaxError as exc:
                    self.fds[2](f"{SH}: {exc}\n".encode())
                    self.status = 1
                    return
                except _Unsupported as exc:
                    self.fds[2](f"adb emulator: {exc} is not supported\n".encode())
                    self.status = 2
                    return
                if items is None:
                    return
                if items:
                    self._list(items, self.fds)
        except _Exit as stop:
            self.status = stop.status

    def check(self) -> None:
        """Between commands and while sleeping: the phone switched off, or (foreground only) adbd's SIGHUP
        for a stream that is gone."""
        if self.device._stop.is_set():
            raise _Stopped
        if self.hangup is not None and self.hangup():
            raise Closed

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.device._stop.wait(min(left, 0.05))

    def _list(self, items: list, fds: dict) -> int:
        for node, background in items:
            if background:
                self._spawn(node, fds)
                self.status = 0  # exchild() with XBGND returns 0
            else:
                self.status = self._node(node, fds)
        return self.status

    def _node(self, node: object, fds: dict) -> int:
        self.check()
        if isinstance(node, _Simple):
            rv = self._simple(node, fds)
        elif isinstance(node, _Loop):
            rv = self._loop(node, fds)
        elif isinstance(node, _Bang):
            rv = 0 if self._node(node.command, fds) else 1
        else:
            assert isinstance(node, _AndOr)
            rv = 0
            for joiner, part in node.items:
                # exec.c TAND/TOR: the right side runs if (rv == 0) == (it is &&)
                if not joiner or (rv == 0) == (joiner == "&&"):
                    rv = self._node(part, fds)
        self.status = rv
        return rv

    def _loop(self, node: _Loop, fds: dict) -> int:
        """exec.c TWHILE/TUNTIL: rv = 0; while ((execute(cond) == 0) == (type == TWHILE)) rv = execute(body)."""
        try:
            with self._redirected(node.redirs, fds) as inner:
                rv = 0
                while True:
                    self.check()
                    if (self._list(node.cond, inner) == 0) == node.until:
                        break
                    rv = self._list(node.body, inner)
                return rv
        except _CommandEnds as ended:
            return ended.status

    @contextlib.contextmanager
    def _redirected(self, redirs: list[tuple], fds: dict) -> Iterator[dict]:
        """The descriptor table with ``redirs`` made (``_redirect``), its files closed when the command ends; a
        redirection that cannot be made ends the command first (``_CommandEnds``)."""
        try:
            table, handles = self._redirect(redirs, fds)
        except _Unsupported as exc:
            fds[2](f"adb emulator: {exc} is not supported\n".encode())
            raise _CommandEnds(2) from None
        except _RedirectFailed:
            raise _CommandEnds(1) from None
        try:
            yield table
        finally:
            for handle in handles:
                handle.close()

    def _spawn(self, node: object, fds: dict) -> None:
        """``node &``: a child shell with a copy of this one's file descriptors and $?, on its own thread.
        It keeps the adb stream open (adbd reads its socket until every writer has closed it) unless it is
        a simple command whose own redirections move both 1 and 2 off it; a compound command keeps a saved
        copy of the descriptors it redirects (exec.c iosetup → savefd) for as long as it runs."""
        child = _Shell(self.device, dict(fds), self.stream_write, hangup=None, status=self.status)
        after = dict(fds)
        if isinstance(node, _Simple):
            for redir in node.redirs:
                if redir[0] == "dup":
                    after[redir[1]] = after.get(redir[2])
                else:
                    after[redir[1]] = None
        holds = any(sink == self.stream_write for sink in after.values())

        def job() -> None:
            try:
                child._node(node, child.fds)
                child._wait_all()
            except (Closed, _Stopped, _Exit):
                pass  # a write to a stream that is gone is SIGPIPE; stop() is the phone switched off

        thread = threading.Thread(target=job, name=f"adb-emulator-job {self.device.serial}", daemon=True)
        self.device._add_job(thread)
        self.jobs.append(thread)
        if holds:
            self.holding.append(thread)
        thread.start()

    def _wait_all(self) -> None:
        for thread in self.jobs:
            while thread.is_alive():
                self.check()
                thread.join(0.05)
        self.jobs = []

    def _redirect(self, redirs: list[tuple], fds: dict) -> tuple[dict, list]:
        """The redirections in order (exec.c iosetup); a failed one prints mksh's "can't create" on the
        standard error as set up so far and fails the command with status 1."""
        table, handles = dict(fds), []
        try:
            for redir in redirs:
                if redir[0] == "dup":
                    _, unit, target = redir
                    if unit not in (1, 2) or target not in (1, 2):
                        raise _Unsupported(f"redirection of file descriptor {target if unit in (1, 2) else unit}")
                    table[unit] = table[target]
                    continue
                _, unit, op, word = redir
                if unit not in (1, 2):
                    raise _Unsupported(f"redirection of file descriptor {unit}")
                path = _expand(word, self.status)
                if path == "/dev/null":
                    table[unit] = _discard
                    continue
                try:
                    host = self.device._writable(path)
                    handle = open(host, "ab" if op == ">>" else "wb", buffering=0)  # noqa: SIM115
                except OSError as exc:
                    table[2](f"{SH}: can't create {path}: {exc.strerror}\n".encode())
                    raise _RedirectFailed from None
                handles.append(handle)
                table[unit] = handle.write
        except BaseException:
            for handle in handles:
                handle.close()
            raise
        return table, handles

    def _simple(self, node: _Simple, fds: dict) -> int:
        try:
            argv = [_expand(word, self.status) for word in node.words]
        except _Unsupported as exc:
            fds[2](f"adb emulator: {exc} is not supported\n".encode())
            return 2
        try:
            with self._redirected(node.redirs, fds) as table:
                if not argv:
                    return 0
                try:
                    return self._exec(argv, table[1], table[2])
                except _Unsupported as exc:
                    table[2](f"adb emulator: {exc} is not supported\n".encode())
                    return 2
        except _CommandEnds as ended:
            return ended.status

    def _exec(self, argv: list[str], out: Callable[[bytes], None], err: Callable[[bytes], None]) -> int:
        name = argv[0]
        device = self.device
        if name == "exit":
            raise _Exit(int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else self.status)
        if name in ("true", ":"):
            return 0
        if name == "false":
            return 1
        if name == "echo":
            args, newline = argv[1:], True
            if args and args[0] == "-n":
                args, newline = args[1:], False
            out((" ".join(args) + ("\n" if newline else "")).encode())
            return 0
        if name in ("[", "test"):
            return _Test(argv, self).run(err)
        if name == "wait":
            if len(argv) > 1:
                raise _Unsupported("wait with arguments")
            self._wait_all()
            return 0  # c_wait: rv = sig, 0 once no job is left
        if name in _UNMODELLED_BUILTINS:
            raise _Unsupported(f"the command '{name}'")
        if "/" in name:
            try:
                host = device.host_path(name)
            except OSError:
                host = None
            if host is None or not os.path.isfile(host):
                err(f"{SH}: {name}: inaccessible or not found\n".encode())
                return 127
            if not os.stat(host).st_mode & 0o111:
                err(f"{SH}: {name}: can't execute: Permission denied\n".encode())
                return 126
            program = device.commands.get(posixpath.normpath(posixpath.join("/", name)))
            if program is None:
                err(f"{SH}: {name}: can't execute: Exec format error\n".encode())
                return 126
        else:
            program = device.commands.get(name) or _TOYBOX.get(name)
            if program is None:
                err(f"{SH}: {name}: inaccessible or not found\n".encode())
                return 127
        if program in _TOYBOX.values():
            return program(argv, self, out, err)
        output, status = program(argv, device)
        out(output)
        return int(status)


def _discard(data: bytes) -> None:
    """/dev/null."""


class _TestError(Exception):
    pass


# funcs.c u_ops / b_ops: every operator mksh knows; the emulator evaluates only some of them
_TEST_UNARY = frozenset(
    ["-a", "-b", "-c", "-d", "-e", "-f", "-G", "-g", "-H", "-h", "-k", "-L", "-n", "-O", "-o", "-p", "-r", "-S", "-s",
     "-t", "-u", "-v", "-w", "-x", "-z"]
)
_TEST_BINARY = frozenset(["=", "==", "!=", "<", ">", "-eq", "-ne", "-gt", "-ge", "-lt", "-le", "-ef", "-nt", "-ot"])


class _Test:
    """mksh's ``test`` / ``[`` (funcs.c c_test, test_eval, test_parse, ptest_*): POSIX's special cases for
    up to four arguments, then the recursive parser; an error is "NAME: [OPERAND: ]MESSAGE", status 2."""

    def __init__(self, argv: list[str], shell: _Shell) -> None:
        self.name, self.w, self.shell = argv[0], argv[1:], shell
        self.pos = 0

    def run(self, err: Callable[[bytes], None]) -> int:
        if self.name == "[":
            if not self.w or self.w[-1] != "]":
                err(f"{SH}: [: missing ]\n".encode())
                return 2
            self.w = self.w[:-1]
        try:
            return self._posix()
        except _TestError as exc:
            err(f"{SH}: {self.name}: {exc}\n".encode())
            return 2

    @staticmethod
    def _out(rv: bool, invert: int) -> int:
        return int(rv) if invert & 1 else int(not rv)

    def _one(self, p: int, invert: int) -> int:
        return self._out(self._eval("-n", self.w[p], None, True), invert)

    def _two(self, p: int, invert: int) -> int | None:
        if self.w[p] == "!":
            return self._one(p + 1, invert + 1)
        if self.w[p] in _TEST_UNARY:
            return self._out(self._eval(self.w[p], self.w[p + 1], None, True), invert)
        return None

    def _three(self, p: int, invert: int) -> int | None:
        lhs, op, rhs = self.w[p : p + 3]
        if op in _TEST_BINARY:
            return self._out(self._eval(op, lhs, rhs, True), invert)
        if op in ("-a", "-o"):
            a, b = self._eval("-n", lhs, None, True), self._eval("-n", rhs, None, True)
            return self._out(a and b if op == "-a" else a or b, invert)
        if lhs == "!":
            return self._two(p + 1, invert + 1)
        if lhs == "(" and rhs == ")":
            return self._one(p + 1, invert)
        return None

    def _posix(self) -> int:
        w, n = self.w, len(self.w)
        rv: int | None = None
        if n == 0:
            return 1
        if n == 1:
            return self._one(0, 0)
        if n == 2:
            rv = self._two(0, 0)
        elif n == 3:
            rv = self._three(0, 0)
        elif n == 4:
            if w[0] == "!":
                rv = self._three(1, 1)
            elif w[0] == "(" and w[3] == ")":
                rv = self._two(1, 0)
        if rv is not None:
            return rv
        # "The results are unspecified." mksh parses the whole expression
        self.pos = 0
        result = self._oexpr(True)
        if self.pos < len(w):
            self._fail(0, "unexpected operator/operand")
        return 0 if result else 1

    def _isa(self, token: str) -> bool:
        if self.pos < len(self.w) and self.w[self.pos] == token:
            self.pos += 1
            return True
        return False

    def _fail(self, ofs: int, msg: str) -> None:
        at = self.pos + ofs
        raise _TestError(f"{self.w[at]}: {msg}" if 0 <= at < len(self.w) else msg)

    def _operand(self, op: str) -> str | None:
        if self.pos >= len(self.w):
            return "1" if op == "-t" else None
        self.pos += 1
        return self.w[self.pos - 1]

    def _oexpr(self, do_eval: bool) -> bool:
        rv = self._aexpr(do_eval)
        if rv:
            do_eval = False
        if self._isa("-o"):
            return self._oexpr(do_eval) or rv
        return rv

    def _aexpr(self, do_eval: bool) -> bool:
        rv = self._nexpr(do_eval)
        if not rv:
            do_eval = False
        if self._isa("-a"):
            return self._aexpr(do_eval) and rv
        return rv

    def _nexpr(self, do_eval: bool) -> bool:
        if self._isa("!"):
            return not self._nexpr(do_eval)
        return self._primary(do_eval)

    def _primary(self, do_eval: bool) -> bool:
        if self._isa("("):
            rv = self._oexpr(do_eval)
            if not self._isa(")"):
                self._fail(0, "missing )")
            return rv
        w = self.w
        if self.pos + 1 < len(w) and w[self.pos + 1] not in _TEST_BINARY and self.pos < len(w) and w[self.pos] in _TEST_UNARY:
            op = w[self.pos]
            self.pos += 1
            operand = self._operand(op)
            if operand is None:
                self._fail(-1, "missing argument")
            return self._eval(op, str(operand), None, do_eval)
        lhs = self._operand("")
        if lhs is None:
            self._fail(0, "expression expected")
        if self.pos < len(w) and w[self.pos] in _TEST_BINARY:
            op = w[self.pos]
            self.pos += 1
            rhs = self._operand(op)
            if rhs is None:
                self._fail(-1, "missing second argument")
            return self._eval(op, str(lhs), rhs, do_eval)
        return self._eval("-n", str(lhs), None, do_eval)

    def _eval(self, op: str, a: str, b: str | None, do_eval: bool) -> bool:
        if not do_eval:
            return False
        if op == "-n":
            return a != ""
        if op == "-z":
            return a == ""
        if op in ("=", "=="):
            return a == b
        if op == "!=":
            return a != b
        if op in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
            x, y = _test_int(a, op), _test_int(str(b), op)
            return {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-le": x <= y, "-gt": x > y, "-ge": x >= y}[op]
        if op in ("-e", "-f", "-d", "-s", "-r", "-w", "-x"):
            device = self.shell.device
            try:
                st = os.stat(device.host_path(a)) if a else None
            except OSError:
                st = None
            if st is None:
                return False
            if op == "-e":
                return True
            if op == "-f":
                return stat.S_ISREG(st.st_mode)
            if op == "-d":
                return stat.S_ISDIR(st.st_mode)
            if op == "-s":
                return st.st_size > 0
            return device._allowed(a, st, op[1])  # access(2) as the shell user
        raise _Unsupported(f"the test operator {op}")


def _test_int(text: str, op: str) -> int:
    """An integer operand of -eq and co.; mksh evaluates them as arithmetic expressions (a name is a
    variable, "1+1" is 2), which is not modelled beyond plain decimal numbers. mksh_ari_t is 32 bits."""
    if not re.fullmatch(r"\s*[-+]?\d+\s*", text):
        raise _Unsupported(f"the arithmetic operand '{text}' of test {op}")
    return (int(text) + 2**31) % 2**32 - 2**31


def _toy_error(err: Callable[[bytes], None], argv0: str, path: str, exc: OSError) -> None:
    err(f"{argv0}: {path}: {exc.strerror}\n".encode())


def _getprop(argv, sh, out, err) -> int:
    device = sh.device
    if len(argv) > 1:
        out((device.props.get(argv[1], argv[2] if len(argv) > 2 else "") + "\n").encode())
    else:
        out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(device.props.items())).encode())
    return 0


def _cat(argv, sh, out, err) -> int:
    status = 0
    for path in argv[1:]:
        try:
            with open(sh.device._readable(path), "rb") as handle:
                out(handle.read())
        except OSError as exc:  # mksh's builtin cat (funcs.c c_cat): bi_errorf, so the shell's name first
            err(f"{SH}: cat: {path}: {exc.strerror}\n".encode())
            status = 1
    return status


def _sha256sum(argv, sh, out, err) -> int:
    """toybox md5sum.c (sha256sum is sha1sum's OLDTOY): "HASH  NAME" per file; a file that cannot be opened
    is perror_msg_raw's "sha256sum: NAME: strerror" (exit 1) and the next one goes on. A folder opens and its
    read() fails, which do_lib_hash takes as the end of the data: the hash of nothing."""
    names = argv[1:]
    if not names or any(a.startswith("-") for a in names):
        raise _Unsupported("sha256sum on its standard input or with options")
    status = 0
    for path in names:
        try:
            host = sh.device._readable(path)
            if os.path.isdir(host):
                digest = hashlib.sha256(b"").hexdigest()
            else:
                hasher = hashlib.sha256()
                with open(host, "rb") as handle:
                    while chunk := handle.read(1 << 16):
                        hasher.update(chunk)
                digest = hasher.hexdigest()
        except OSError as exc:
            _toy_error(err, "sha256sum", path, exc)
            status = 1
            continue
        out(f"{digest}  {path}\n".encode())
    return status


def _ls(argv, sh, out, err) -> int:
    device = sh.device
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    paths = [a for a in argv[1:] if not (a.startswith("-") and len(a) > 1)] or ["."]
    if set(flags) - {"a", "1"}:
        err(b"adb emulator: ls options other than -a and -1 are not supported\n")
        return 2
    status = 0
    for path in paths:
        try:
            host = device.host_path(path if path != "." else "/")
            if os.path.isdir(host):
                names = sorted(os.listdir(host))
                names = sorted([".", "..", *names]) if "a" in flags else [n for n in names if not n.startswith(".")]
                out("".join(f"{name}\n" for name in names).encode())
            else:
                os.lstat(host)
                out(f"{path}\n".encode())
        except OSError as exc:
            _toy_error(err, "ls", path, exc)
            status = 1
    return status


def _mkdir(argv, sh, out, err) -> int:
    parents = "-p" in argv[1:]
    status = 0
    for path in (a for a in argv[1:] if a != "-p"):
        try:
            host = sh.device.host_path(path)
            if parents:
                os.makedirs(host, exist_ok=True)
            else:
                os.mkdir(host)
        except OSError as exc:
            _toy_error(err, "mkdir", path, exc)
            status = 1
    return status


def _rm(argv, sh, out, err) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-"))
    force, recursive = "f" in flags, bool(set(flags) & {"r", "R"})
    status = 0
    for path in (a for a in argv[1:] if not a.startswith("-")):
        try:
            host = sh.device.host_path(path)
            if os.path.isdir(host) and not os.path.islink(host):
                if not recursive:
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
                shutil.rmtree(host)
            else:
                os.unlink(host)
        except OSError as exc:
            if not (force and exc.errno == errno.ENOENT):
                _toy_error(err, "rm", path, exc)
                status = 1
    return status


def _chmod(argv, sh, out, err) -> int:
    if len(argv) < 3:
        err(b"chmod: Needs 2 arguments\n")
        return 1
    spec, status = argv[1], 0
    for path in argv[2:]:
        try:
            host = sh.device.host_path(path)
            current = stat.S_IMODE(os.stat(host).st_mode)
            mode = _chmod_mode(spec, current)
            if mode is None:
                err(f"chmod: bad mode '{spec}'\n".encode())
                return 1
            os.chmod(host, mode | 0o600)  # the host owner keeps rw so the test can clean up
        except OSError as exc:
            _toy_error(err, "chmod", path, exc)
            status = 1
    return status


def _chmod_mode(spec: str, current: int) -> int | None:
    if spec and all(c in "01234567" for c in spec):
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        who = ""
        while clause and clause[0] in "ugoa":
            who, clause = who + clause[0], clause[1:]
        if not clause or clause[0] not in "+-=" or set(clause[1:]) - set("rwx"):
            return None
        op, perms = clause[0], clause[1:]
        mask = 0
        for w in who or "a":
            shifts = {"u": [6], "g": [3], "o": [0], "a": [6, 3, 0]}[w]
            for s in shifts:
                mask |= sum({"r": 4, "w": 2, "x": 1}[p] for p in perms) << s
                if op == "=":
                    mode &= ~(7 << s)
        mode = mode & ~mask if op == "-" else mode | mask
    return mode


def _sleep(argv, sh, out, err) -> int:
    """mksh's builtin sleep (funcs.c c_sleep, built with HAVE_SELECT as Android's is): one operand,
    parse_usec's "SECONDS[.FRACTION]"; else "sleep: syntax error" (status 1)."""
    args = argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if len(args) != 1:
        err(f"{SH}: sleep: syntax error\n".encode())
        return 1
    m = re.fullmatch(r"(\d*)(?:\.(\d*))?", args[0])
    if m is None:
        err(f"{SH}: sleep: syntax error: Invalid argument '{args[0]}'\n".encode())
        return 1
    usec = int(((m.group(2) or "") + "000000")[:6])
    sh.sleep(int(m.group(1) or 0) + usec / 1e6)
    return 0


_TOYBOX = {"getprop": _getprop, "cat": _cat, "ls": _ls, "mkdir": _mkdir, "rm": _rm, "chmod": _chmod, "sleep": _sleep,
           "sha256sum": _sha256sum}


def shell_service(stream: Stream, command: str) -> None:
    """``shell:CMD``: mksh -c CMD with the stream as its 1 and 2. The stream ends when the shell has and
    every background job still holding it has (or when it is lost: adbd then SIGHUPs the shell alone)."""
    write = stream.write
    shell = _Shell(stream.conn.device, {1: write, 2: write}, write, hangup=lambda: stream.closed)
    try:
        shell.run(command)
        for thread in shell.holding:
            while thread.is_alive() and not stream.closed:
                shell.check()
                thread.join(0.05)
    except _Stopped:
        pass
