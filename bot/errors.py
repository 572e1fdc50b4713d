"""lien's exceptions.

    LienError
    ├── ConfigError        the TOML file is wrong; names the key path (and line) -> exit 2
    ├── InputError         a bad event line, export record or command argument -> exit 2 / a reply
    │   └── CommandError   a command lien understood but cannot do -> a `refuse` or `reply` with a fixed text
    ├── DatabaseUnavailable the database cannot be opened or reached -> exit 1
    └── UnsupportedAction  an adapter was handed an action type it cannot perform
"""

from __future__ import annotations


class LienError(Exception):
    """Base of every error lien raises on purpose."""


class ConfigError(LienError):
    """The configuration is invalid; the message names the key path and what was expected."""


class InputError(LienError):
    """Bad input: `where` is `file:line` (or a record position), `field` the offending field."""

    def __init__(self, problem: str, *, where: str | None = None, field: str | None = None) -> None:
        self.problem = problem
        self.where = where
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [p for p in (self.where, self.field) if p]
        return ": ".join([*parts, self.problem])


class CommandError(InputError):
    """A command that cannot be carried out; `reason` is the machine-readable refusal reason."""

    def __init__(self, problem: str, *, reason: str = "bad_command") -> None:
        self.reason = reason
        super().__init__(problem)


class DatabaseUnavailable(LienError):
    """The database cannot be opened or reached (a missing directory, a server down, refused credentials); the
    message names the database (password hidden) and the reason."""


class UnsupportedAction(LienError):
    """An adapter cannot perform this action type."""


class ActionRefused(UnsupportedAction):
    """The platform will not let lien do this (no permission, not in the room); `reason` is machine-readable."""

    def __init__(self, problem: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(problem)
