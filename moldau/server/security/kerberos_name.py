"""Kerberos principal names and `sasl.kerberos.principal.to.local.rules`: how Kafka turns
`alice@MOLDAU.TEST` or `kafka/broker1.example.com@MOLDAU.TEST` into the short name that
ACLs see as `User:<short name>` (Kafka's KerberosName, KerberosShortNamer, KerberosRule).
Pure: the default realm is passed in.

A name is `service[/host][@REALM]`. A rule is `DEFAULT` or

    RULE:[n:format](regexp)s/pattern/replacement/g/L

- `[n:format]` applies to names with n components and builds a string from the format,
  where `$0` is the realm, `$1` the first component, `$2` the second:
  `[2:$1@$0]` makes `kafka@MOLDAU.TEST` of `kafka/host@MOLDAU.TEST`;
- `(regexp)`, optional, must match that whole string for the rule to apply;
- `s/pattern/replacement/`, optional, substitutes the first match (every match with `g`);
  `$1` in the replacement is a group, as in Java;
- `/L` or `/U` lower- or upper-cases the result.

`DEFAULT` gives the first component when the realm is the default realm. Rules are tried in
order and the first that applies wins; a result still holding `/` or `@` is refused, as is a
name no rule applies to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kafka's RULE_PARSER, group for group.
_RULE_PARSER = re.compile(r"((DEFAULT)|((RULE:\[(\d*):([^\]]*)](\(([^)]*)\))?(s/([^/]*)/([^/]*)/(g)?)?/?(L|U)?)))")
_NAME_PARSER = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")
_PARAMETER = re.compile(r"([^$]*)(\$(\d*))?")
_NON_SIMPLE = re.compile(r"[/@]")


class KerberosNameError(ValueError):
    """A malformed name or rule, or a name no rule maps; the message says which."""


@dataclass(frozen=True)
class KerberosName:
    service_name: str
    host_name: str | None = None
    realm: str | None = None

    @classmethod
    def parse(cls, principal: str) -> KerberosName:
        match = _NAME_PARSER.fullmatch(principal)
        if match is None:
            if "@" in principal:
                raise KerberosNameError(f"Malformed Kerberos name: {principal}")
            return cls(principal)
        return cls(match.group(1), match.group(3), match.group(4))

    def __str__(self) -> str:
        host = f"/{self.host_name}" if self.host_name is not None else ""
        realm = f"@{self.realm}" if self.realm is not None else ""
        return f"{self.service_name}{host}{realm}"


def _java_replacement(replacement: str) -> str:
    """Java's Matcher replacement syntax ($1, \\$) as Python's (\\g<1>)."""
    out: list[str] = []
    i = 0
    while i < len(replacement):
        c = replacement[i]
        if c == "\\" and i + 1 < len(replacement):
            out.append(replacement[i + 1].replace("\\", "\\\\"))
            i += 2
        elif c == "$":
            digits = re.match(r"\d+", replacement[i + 1:])
            if digits is None:
                raise KerberosNameError(f"illegal group reference in replacement {replacement!r}")
            out.append(f"\\g<{digits.group()}>")
            i += 1 + len(digits.group())
        else:
            out.append("\\\\" if c == "\\" else c)
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class KerberosRule:
    text: str
    default_realm: str
    is_default: bool = False
    components: int = 0
    format: str = ""
    match: re.Pattern[str] | None = None
    from_pattern: re.Pattern[str] | None = None
    to_pattern: str = ""
    repeat: bool = False
    to_lower: bool = False
    to_upper: bool = False

    def apply(self, params: list[str]) -> str | None:
        """`params` = [realm, first component, second component]; None if it does not apply."""
        result: str | None = None
        if self.is_default:
            if self.default_realm == params[0]:
                result = params[1]
        elif len(params) - 1 == self.components:
            base = _replace_parameters(self.format, params)
            if self.match is None or self.match.fullmatch(base):
                if self.from_pattern is None:
                    result = base
                else:
                    try:
                        result = self.from_pattern.sub(self.to_pattern, base, count=0 if self.repeat else 1)
                    except (re.error, IndexError) as exc:
                        raise KerberosNameError(f"rule {self.text}: {exc}") from None
        if result is not None and _NON_SIMPLE.search(result):
            raise KerberosNameError(f"Non-simple name {result} after auth_to_local rule {self.text}")
        if result is not None and self.to_lower:
            result = result.lower()
        elif result is not None and self.to_upper:
            result = result.upper()
        return result


def _replace_parameters(format: str, params: list[str]) -> str:
    out: list[str] = []
    start = 0
    while start < len(format):
        match = _PARAMETER.match(format, start)
        if match is None or match.end() == start:
            break
        out.append(match.group(1))
        number = match.group(3)
        if number is not None:
            if not number:
                raise KerberosNameError(f"bad format in username mapping in {format!r} ($ without a number)")
            n = int(number)
            if n >= len(params):
                raise KerberosNameError(f"index {n} from {format} is outside of the valid range 0 to "
                                        f"{len(params) - 1}")
            out.append(params[n])
        start = match.end()
    return "".join(out)


def _compile(what: str, rule: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise KerberosNameError(f"Invalid rule: {rule} ({what} {pattern!r}: {exc})") from None


def parse_rules(default_realm: str, rules: list[str]) -> list[KerberosRule]:
    out: list[KerberosRule] = []
    for raw in rules:
        rule = raw.strip()
        match = _RULE_PARSER.match(rule)
        if match is None:
            raise KerberosNameError(f"Invalid rule: {rule}")
        if match.end() != len(rule):
            raise KerberosNameError(f"Invalid rule: `{rule}`, unmatched substring: `{rule[match.end():]}`")
        if match.group(2) is not None:
            out.append(KerberosRule(rule, default_realm, is_default=True))
            continue
        if not match.group(5):
            raise KerberosNameError(f"Invalid rule: {rule} (no number of components in [n:format])")
        out.append(KerberosRule(
            rule, default_realm, components=int(match.group(5)), format=match.group(6),
            match=_compile("regexp", rule, match.group(8)) if match.group(8) is not None else None,
            from_pattern=_compile("pattern", rule, match.group(10)) if match.group(10) is not None else None,
            to_pattern=_java_replacement(match.group(11) or ""), repeat=match.group(12) == "g",
            to_lower=match.group(13) == "L", to_upper=match.group(13) == "U"))
    return out


def split_rules(value: str) -> list[str]:
    """The config value as Kafka's LIST type reads it: comma-separated, trimmed."""
    return [item.strip() for item in value.split(",") if item.strip()]


class KerberosShortNamer:
    """`sasl.kerberos.principal.to.local.rules` applied to authenticated principals."""

    def __init__(self, default_realm: str, rules: list[str] | None = None) -> None:
        self.default_realm = default_realm
        self.rules = parse_rules(default_realm, rules if rules else ["DEFAULT"])

    def short_name(self, name: KerberosName) -> str:
        if name.host_name is None:
            if name.realm is None:
                return name.service_name  # already simple
            params = [name.realm, name.service_name]
        else:
            params = [name.realm or "", name.service_name, name.host_name]
        for rule in self.rules:
            result = rule.apply(params)
            if result is not None:
                return result
        raise KerberosNameError(f"No rules apply to {name}, rules [{', '.join(r.text for r in self.rules)}]")
