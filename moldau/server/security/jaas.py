"""Kafka's JAAS configuration text (`sasl.jaas.config`), parsed without a JVM.

The grammar Kafka's `JaasConfig` reads::

    <LoginModuleClass> <flag> [<key>=<value> ...] ;   (one entry per module)

where flag is required, requisite, sufficient or optional; a value is a word
(letters, digits, `_ $ - .`) or a string in double or single quotes with backslash
escapes; `//` and `/* */` comments are allowed. Example::

    org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret" user_admin="admin-secret";
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
FLAGS = ("required", "requisite", "sufficient", "optional")

_WORD = re.compile(r"[A-Za-z0-9_$.\-]+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class JaasError(ValueError):
    """The text is not valid JAAS configuration; the message says where and why."""


@dataclass(frozen=True)
class LoginModule:
    class_name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def plain_users(self) -> dict[str, str]:
        """PlainLoginModule's `user_<name>="<password>"` options: the users a broker accepts."""
        return {k[len("user_"):]: v for k, v in self.options.items() if k.startswith("user_") and len(k) > 5}


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs: kind is 'word', 'string' or the punctuation itself."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JaasError("unterminated /* comment")
            i = end + 2
        elif c in "=;":
            out.append((c, c))
            i += 1
        elif c in "\"'":
            value, i = _quoted(text, i)
            out.append(("string", value))
        else:
            m = _WORD.match(text, i)
            if m is None:
                raise JaasError(f"unexpected character {c!r} at position {i}")
            out.append(("word", m.group()))
            i = m.end()
    return out


def _quoted(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(chars), i + 1
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            chars.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        chars.append(c)
        i += 1
    raise JaasError(f"unterminated quoted value starting at position {start}")


def parse_jaas_config(text: str) -> list[LoginModule]:
    """Every login module entry in `text`, in order; JaasError if malformed."""
    tokens = _tokens(text)
    modules: list[LoginModule] = []
    i = 0
    while i < len(tokens):
        kind, class_name = tokens[i]
        if kind != "word":
            raise JaasError(f"expected a login module class name, got {class_name!r}")
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "word":
            raise JaasError(f"login module {class_name} has no control flag (one of {', '.join(FLAGS)})")
        flag = tokens[i + 1][1].lower()
        if flag not in FLAGS:
            raise JaasError(f"invalid control flag {tokens[i + 1][1]!r} for {class_name} "
                            f"(expected one of {', '.join(FLAGS)})")
        i += 2
        options: dict[str, str] = {}
        while True:
            if i >= len(tokens):
                raise JaasError(f"login module {class_name}: missing ';' at the end")
            kind, value = tokens[i]
            if kind == ";":
                i += 1
                break
            if kind != "word":
                raise JaasError(f"login module {class_name}: expected an option name, got {value!r}")
            if i + 2 >= len(tokens) or tokens[i + 1][0] != "=" or tokens[i + 2][0] not in ("word", "string"):
                raise JaasError(f"login module {class_name}: option {value!r} has no value (expected {value}=\"...\")")
            options[value] = tokens[i + 2][1]
            i += 3
        modules.append(LoginModule(class_name, flag, options))
    if not modules:
        raise JaasError("no login module given")
    return modules


def parse_single_module(text: str) -> LoginModule:
    """Kafka's rule for `sasl.jaas.config`: exactly one login module."""
    modules = parse_jaas_config(text)
    if len(modules) != 1:
        raise JaasError(f"JAAS config property contains {len(modules)} login modules, should be 1 module")
    return modules[0]
