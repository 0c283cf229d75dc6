"""The commands of a Markdown document's fenced ``sh`` blocks, taken apart as a POSIX shell would.

:func:`sh_blocks` finds the blocks (indented ones in lists too); :func:`parse` splits a block into
statements (one top-level line each: continuation lines joined, loops and here-documents kept
whole) and each statement into its simple commands (comments and redirections dropped,
assignments before a command dropped, the commands inside ``$(…)``, pipelines, ``&&``/``||``
lists and loop bodies one by one). ``<name>`` placeholders are kept as sentinels
(:data:`SENTINEL`), so that they are neither redirections nor lost; :func:`unsentinel` shows them
again. :data:`DRY_PARSE` and :func:`run_on_a_terminal` run them. Used by
tests/test_doc_commands.py.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEYWORDS = {"for", "while", "until", "if", "case", "do", "then", "else", "elif", "done", "fi", "esac", "{", "}", "!"}

PLACEHOLDER = re.compile(r"<(?P<name>[A-Za-z](?:[\w.:/-]| (?=\w))*)>")
SENTINEL = re.compile("\x01(?P<name>[^\x02]*)\x02")


@dataclass
class Command:
    words: list[str]

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class Statement:
    """One top-level line of a block (continuations, loops and here-documents included)."""

    document: str
    line: int
    text: str
    commands: list[Command] = field(default_factory=list)

    def where(self) -> str:
        return f"{self.document}:{self.line}"


OPERATORS = ("&&", "||", ";;", "<<", ">>", ">&", "<&", ";", "|", "&", "(", ")", "<", ">")


class _Lexer:
    """A small POSIX-shell lexer: enough for the docs' commands, strict about the rest."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.heredocs: list[str] = []

    def tokens(self) -> Iterator[tuple[str, str, int, list[str]]]:
        """(kind, value, position, substitutions): kind is word, op or nl."""
        text, n = self.text, len(self.text)
        while self.i < n:
            c = text[self.i]
            if c in " \t":
                self.i += 1
            elif text.startswith("\\\n", self.i):
                self.i += 2
            elif c == "\n":
                position = self.i
                self.i += 1
                for delimiter in self.heredocs:
                    self._skip_heredoc(delimiter)
                self.heredocs = []
                yield "nl", "\n", position, []
            elif c == "#":
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end
            elif op := next((o for o in OPERATORS if text.startswith(o, self.i)), None):
                yield "op", op, self.i, []
                self.i += len(op)
            else:
                start = self.i
                word, subs = self._word()
                yield "word", word, start, subs

    def _skip_heredoc(self, delimiter: str) -> None:
        lines = self.text[self.i:].split("\n")
        for count, line in enumerate(lines):
            if line == delimiter:
                self.i += sum(len(x) + 1 for x in lines[:count + 1])
                return
        raise ValueError(f"here-document without its closing {delimiter!r}")

    def _word(self) -> tuple[str, list[str]]:
        text, n = self.text, len(self.text)
        out: list[str] = []
        subs: list[str] = []
        while self.i < n:
            c = text[self.i]
            if c in " \t\n" or any(text.startswith(o, self.i) for o in OPERATORS):
                break
            if c == "'":
                end = text.find("'", self.i + 1)
                if end < 0:
                    raise ValueError("unterminated single quote")
                out.append(text[self.i + 1:end])
                self.i = end + 1
            elif c == '"':
                self.i += 1
                while True:
                    if self.i >= n:
                        raise ValueError("unterminated double quote")
                    d = text[self.i]
                    if d == '"':
                        self.i += 1
                        break
                    if d == "\\" and self.i + 1 < n and text[self.i + 1] in '"\\$`\n':
                        out.append(text[self.i + 1])
                        self.i += 2
                    elif text.startswith("$(", self.i):
                        subs.append(self._substitution(out))
                    else:
                        out.append(d)
                        self.i += 1
            elif c == "\\" and self.i + 1 < n:
                out.append(text[self.i + 1])
                self.i += 2
            elif text.startswith("$(", self.i):
                subs.append(self._substitution(out))
            else:
                out.append(c)
                self.i += 1
        return "".join(out), subs

    def _substitution(self, out: list[str]) -> str:
        """``$(…)`` at self.i: its body (a word of its own to the caller)."""
        depth, j, quote = 0, self.i + 1, ""
        while j < len(self.text):
            ch = self.text[j]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    body = self.text[self.i + 2:j]
                    out.append("$(…)")
                    self.i = j + 1
                    return body
            j += 1
        raise ValueError("unterminated $(")


def _commands(text: str, *, statements: bool, document: str = "", first_line: int = 1) -> list[Any]:
    """The simple commands of ``text`` (or its statements, each with its commands)."""
    lexer = _Lexer(text)
    result: list[Statement] = []
    current: Statement | None = None
    start = 0  # where the current statement starts in ``text``
    words: list[str] = []
    depth = 0
    redirect = False
    heredoc = False
    continues = False

    def end_command() -> None:
        nonlocal words
        body = [] if words[:1] in (["for"], ["case"]) else list(words)  # `for x in a b c`: no command
        while body and body[0] in KEYWORDS:
            body = body[1:]
        while body and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", body[0]):
            body = body[1:]  # assignments before a command
        if body and current is not None:
            current.commands.append(Command(body))
        words = []

    for kind, value, position, _subs in lexer.tokens():
        if current is None:
            if kind == "nl":
                continue
            current = Statement(document, first_line + text.count("\n", 0, position), "")
            start = position
        if kind == "word":
            if not words and value in ("for", "while", "until", "if", "case") and not (heredoc or redirect):
                depth += 1  # a compound command: its statement ends with its done/fi/esac
            if heredoc:
                lexer.heredocs.append(value)
                heredoc = False
            elif redirect:
                redirect = False
            else:
                if not words and value in ("done", "fi", "esac"):
                    depth -= 1
                words.append(value)
            continues = False
        elif kind == "op":
            if value in ("<", ">", ">>", ">&", "<&"):
                if words and words[-1].isdigit():
                    words.pop()  # 2>&1: the fd number
                redirect = True
            elif value == "<<":
                heredoc = True
            else:
                end_command()
                continues = value in ("&&", "||", "|")
        else:  # newline
            end_command()
            if depth == 0 and not continues:
                current.text = text[start:lexer.i].rstrip("\n")
                result.append(current)
                current = None
    if current is not None:
        end_command()
        current.text = text[start:].rstrip("\n")
        result.append(current)
    for statement in result:
        for body in _nested_bodies(statement):
            statement.commands.extend(_commands(body, statements=False))
    if statements:
        return result
    return [c for s in result for c in s.commands]


def _nested_bodies(statement: Statement) -> list[str]:
    """The ``$(…)`` bodies of a statement's text (found again by a lexer pass)."""
    lexer = _Lexer(statement.text)
    bodies: list[str] = []
    try:
        for kind, _value, _position, subs in lexer.tokens():
            if kind == "word":
                bodies.extend(subs)
    except ValueError:
        pass
    return bodies


def parse(text: str, document: str = "", first_line: int = 1) -> list[Statement]:
    """The statements of one ``sh`` block, placeholders ``<name>`` kept as sentinels."""
    protected = PLACEHOLDER.sub(lambda m: f"\x01{m['name']}\x02", text)
    return list(_commands(protected, statements=True, document=document, first_line=first_line))


FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\s]*)\s*$")


def sh_blocks(path: Path) -> list[tuple[int, str]]:
    """(first line, text) of every fenced ``sh`` block; the fence's indentation removed."""
    lines = path.read_text().splitlines()
    blocks: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            indent, body, start = len(m["indent"]), [], i + 2
            i += 1
            while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
                body.append(lines[i][indent:] if not lines[i][:indent].strip() else lines[i])
                i += 1
            if m["info"] == "sh":
                blocks.append((start, "\n".join(body) + "\n"))
        i += 1
    return blocks


def unsentinel(text: str) -> str:
    return SENTINEL.sub(lambda m: f"<{m['name']}>", text)


def placeholders_in(statement: Statement) -> set[str]:
    return {m["name"] for m in SENTINEL.finditer(statement.text)}


# ------------------------------------------------------------------------------ running them

#: ``python -c DRY_PARSE ARGS``: ``python -m components ARGS`` stopped right after argparse
#: parsed the flags (exit 0), or argparse's own refusal (exit 2).
DRY_PARSE = (
    "import argparse, runpy, sys\n"
    "parse = argparse.ArgumentParser.parse_args\n"
    "def parsed(self, *args, **kwargs):\n"
    "    parse(self, *args, **kwargs)\n"
    "    raise SystemExit(0)\n"
    "argparse.ArgumentParser.parse_args = parsed\n"
    "sys.argv = ['components', *sys.argv[1:]]\n"
    "runpy.run_module('components', run_name='__main__')\n"
)


def run_on_a_terminal(text: str, project: Path, env: dict[str, str], answer: str,
                      timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command that asks on a terminal: run on a pseudo-terminal, ``answer`` typed ahead;
    killed after ``timeout`` seconds."""
    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(["sh", "-e", "-c", text], cwd=project, env={**env, "TERM": "dumb"},
                               stdin=child_fd, stdout=child_fd, stderr=child_fd, close_fds=True)
    os.close(child_fd)
    os.write(main_fd, answer.encode())
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([main_fd], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # the child side closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    else:
        process.kill()
    os.close(main_fd)
    code = process.wait(timeout=30)
    output = b"".join(chunks).decode(errors="replace")
    return subprocess.CompletedProcess(text, code, output, "")
