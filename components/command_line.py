"""The commands' argument parser: argparse, with its errors in the tool's words.

Every command (``python -m components COMMAND``) parses its flags with :class:`CommandParser`.
A bad command line is one line on stderr that names the flag, what was given and what is
accepted, and says where the help is; the exit code is 2, as argparse's. argparse's own phrasing
("invalid _positive value", "the following arguments are required") never reaches the user.

The value types here (:func:`whole_number`, :func:`number`) say what they accept, so a bad
value's message can say it too.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

#: What argparse's built-in value types accept, in the tool's words.
_ACCEPTS: dict[Any, str] = {int: "a whole number", float: "a number", str: "text"}


def whole_number(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """A value type: a whole number within the bounds."""
    accepts = "a whole number" + _bounds(minimum, maximum)

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {accepts}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {accepts}")
        return value

    parse.accepts = accepts  # type: ignore[attr-defined]
    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[str], float]:
    """A value type: a finite number (decimals allowed) within the bounds."""
    accepts = "a number" + _bounds(minimum, maximum)

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {accepts}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected {accepts}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {accepts}")
        return value

    parse.accepts = accepts  # type: ignore[attr-defined]
    return parse


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" of at least {minimum:g}"
    if maximum is not None:
        return f" of at most {maximum:g}"
    return ""


def _quoted(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: the flag, what was given, what is accepted."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """As argparse's; the result is kept so that an unknown flag after a subcommand is reported
        by that subcommand's parser, with its flags (argparse reports it from the top: :meth:`error`)."""
        parsed, extras = super().parse_known_args(args, namespace)
        self._parsed = parsed
        return parsed, extras

    def _chosen(self, parsed: argparse.Namespace) -> CommandParser:
        """The (sub)parser of the subcommand ``parsed`` names, or this one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and action.dest != argparse.SUPPRESS:  # noqa: SLF001
                chosen = (action.choices or {}).get(str(getattr(parsed, action.dest, "")))
                if isinstance(chosen, CommandParser):
                    return chosen._chosen(parsed)  # noqa: SLF001
        return self

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as error:
            if error.message.startswith("invalid "):  # argparse's own "invalid int value: 'x'"
                accepts = getattr(action.type, "accepts", None) or _ACCEPTS.get(action.type)
                detail = f"expected {accepts}" if accepts else f"see {self._name(action)} in the help"
            else:  # the value type's own words (an ArgumentTypeError)
                detail = error.message
            raise argparse.ArgumentError(action, f"{arg_string!r} is not accepted: {detail}") from None

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            what = "a command" if isinstance(action, argparse._SubParsersAction) else "one of"  # noqa: SLF001
            accepted = _quoted(action.choices)
            expected = f"expected {what}: {accepted}" if what == "a command" else f"expected one of {accepted}"
            raise argparse.ArgumentError(action, f"{value!r} is not accepted: {expected}")

    def error(self, message: str) -> NoReturn:
        """Print one line (what is wrong, and where the help is) and exit 2."""
        parsed = getattr(self, "_parsed", None)
        if message.startswith("unrecognized arguments: ") and parsed is not None:
            chosen = self._chosen(parsed)
            if chosen is not self:
                chosen.error(message)
        self.exit(2, f"{self.prog}: {self._explain(message)}; see '{self.prog} --help'\n")

    # --- argparse's messages, in the tool's words ----------------------------------------------

    def _name(self, action: argparse.Action) -> str:
        if action.option_strings:
            return "/".join(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return "COMMAND"
        return str(action.metavar or action.dest).upper()

    def _by_name(self, name: str) -> argparse.Action | None:
        for action in self._actions:
            names = {*action.option_strings, str(action.metavar), str(action.dest)}
            if action.choices is not None and not action.option_strings:
                names.add("{" + ",".join(map(str, action.choices)) + "}")
            if name in names:
                return action
        return None

    def _describe(self, action: argparse.Action) -> str:
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return f"one of {_quoted(action.choices or ())}"
        text = action.help if action.help and action.help != argparse.SUPPRESS else ""
        if action.choices is not None:
            text = f"one of {_quoted(action.choices)}"
        return text

    def _flags(self) -> str:
        flags = [o for a in self._actions for o in a.option_strings
                 if a.help != argparse.SUPPRESS and o.startswith("--") and o != "--help"]
        return _quoted(flags) or "none"

    def _explain(self, message: str) -> str:
        if found := re.fullmatch(r"the following arguments are required: (.+)", message):
            parts = []
            for name in found[1].split(", "):
                action = self._by_name(name)
                if action is None:
                    parts.append(name)
                    continue
                described = self._describe(action)
                if action.option_strings:
                    value = f" {action.metavar or action.dest.upper()}" if action.nargs != 0 else ""
                    parts.append(f"{self._name(action)}{value} is required" + (f" ({described})" if described else ""))
                else:
                    parts.append(f"{self._name(action)} is missing" + (f": {described}" if described else ""))
            return "; ".join(parts)
        if found := re.fullmatch(r"unrecognized arguments: (.+)", message):
            commands = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
            if commands and self._flags() == "none":  # e.g. `fleet --x`: a command comes first
                return f"unknown argument {found[1]!r}: expected a command: {_quoted(commands[0].choices or ())}"
            return f"unknown argument {found[1]!r}: the flags are {self._flags()}"
        if found := re.fullmatch(r"one of the arguments (.+) is required", message):
            return f"give one of {found[1].replace(' ', ', ')}"
        if found := re.fullmatch(r"ambiguous option: (\S+) could match (.+)", message):
            return f"{found[1]} is ambiguous: it could be {found[2]}"
        if found := re.fullmatch(r"argument (.+?): (.+)", message, re.DOTALL):
            action = self._by_name(found[1])
            name = self._name(action) if action is not None else found[1]
            detail = found[2]
            if detail == "expected one argument":
                metavar = (action.metavar or action.dest.upper()) if action is not None else "a value"
                return f"{name} needs a value ({metavar})"
            if explicit := re.fullmatch(r"ignored explicit argument (.+)", detail):
                return f"{name} takes no value, given {explicit[1]}"
            if other := re.fullmatch(r"not allowed with argument (.+)", detail):
                return f"{name} cannot be combined with {other[1]}"
            return f"{name}: {detail}"
        return message


def read_user_file(path: Any, expected: str, encoding: str | None = None) -> str:
    """The text of a file the user named, or :class:`ValueError` with one line saying what is
    wrong with it (``expected`` names what it should be, e.g. "a JSON file"), for the caller to
    prefix with the flag or key that named it."""
    try:
        return str(path.read_text(encoding=encoding))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, expected {expected}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not text, expected {expected}") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be read: {error.strerror or error.__class__.__name__}") from None
