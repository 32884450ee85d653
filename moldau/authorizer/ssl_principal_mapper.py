"""`ssl.principal.mapping.rules`: how the distinguished name of a client certificate
becomes a principal name (Kafka's SslPrincipalMapper, KIP-371).

The value is a comma-separated list of rules, tried in order; the first that applies
gives the name:

    RULE:<pattern>/<replacement>/[L|U]    applies when the Java regular expression
                                          <pattern> matches the whole DN; the name is the DN
                                          with every match replaced by <replacement> (`$1`
                                          for a group), then lower-cased (L) or upper-cased (U)
    DEFAULT                               the DN unchanged (the default value of the property)

    RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L,DEFAULT
        CN=Duke,OU=ServiceUsers,O=Org,C=US  ->  duke
        OU=JavaSoft,O=Sun,C=US              ->  OU=JavaSoft,O=Sun,C=US

A `/` inside a pattern or replacement is written `\\/`. No rule applying is an
authentication failure (`NoMatchingRule`); a malformed rule fails at start
(`ValueError`, with Kafka's message).

The patterns are Java regular expressions run by Python's `re`: the common syntax is the
same; Java-only constructs (`\\p{Lower}`, `\\Q..\\E`) are refused or differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SSL_PRINCIPAL_MAPPING_RULES = "DEFAULT"

# Kafka's rule grammar, as its regular expressions (Java and Python read them alike).
# Groups of _RULE_PATTERN: 1 DEFAULT, 2 pattern, 4 replacement, 6 L or U, 7 anything else.
_RULE_PATTERN = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_RULE_SPLITTER = re.compile(r"\s*(" + _RULE_PATTERN + r")\s*(,\s*|$)", re.ASCII)
_RULE_PARSER = re.compile(_RULE_PATTERN, re.ASCII)
_BACK_REFERENCE = re.compile(r"\$(\d+)", re.ASCII)
_DIGITS = "0123456789"
# Java names a group `(?<name>...)`, Python `(?P<name>...)`.
_JAVA_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<([A-Za-z][A-Za-z0-9]*)>")


def _python_regex(java_pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(_JAVA_NAMED_GROUP.sub(r"(?P<\1>", java_pattern))
    except re.error as e:
        raise ValueError(f"Invalid rule pattern: {java_pattern}: {e}") from e


class NoMatchingRule(ValueError):
    """No rule applies to a distinguished name: the client fails authentication."""


@dataclass(frozen=True)
class Rule:
    is_default: bool
    pattern: str = ""
    replacement: str = ""
    to_lower_case: bool = False
    to_upper_case: bool = False

    def __post_init__(self) -> None:
        if not self.is_default:
            _python_regex(self.pattern)

    def apply(self, distinguished_name: str) -> str | None:
        """The name this rule gives the DN, or None if it does not apply."""
        if self.is_default:
            return distinguished_name
        regex = _python_regex(self.pattern)
        if regex.fullmatch(distinguished_name) is None:
            return None
        replacement = _escape_literal_back_references(self.replacement, regex.groups)
        result = regex.sub(lambda m: _java_replacement(replacement, m, regex.groups), distinguished_name)
        if self.to_lower_case:
            return result.lower()
        if self.to_upper_case:
            return result.upper()
        return result

    def __str__(self) -> str:
        if self.is_default:
            return "DEFAULT"
        case = "/L" if self.to_lower_case else "/U" if self.to_upper_case else ""
        return f"RULE:{self.pattern}/{self.replacement}{case}"


def parse_rules(rules: str | None) -> list[Rule]:
    """The rules of an `ssl.principal.mapping.rules` value (None: the default)."""
    text = DEFAULT_SSL_PRINCIPAL_MAPPING_RULES if rules is None else rules
    parsed = []
    for found in _RULE_SPLITTER.finditer(text.strip()):
        rule = found.group(1)
        match = _RULE_PARSER.match(rule)
        if match is None:
            raise ValueError(f"Invalid rule: {rule}")
        if match.end() != len(rule):
            raise ValueError(f"Invalid rule: `{rule}`, unmatched substring: `{rule[match.end():]}`")
        if match.group(1) is not None:
            parsed.append(Rule(is_default=True))
        elif match.group(2) is not None:
            parsed.append(Rule(False, match.group(2), match.group(4), match.group(6) == "L", match.group(6) == "U"))
        # else an empty rule: ignored
    return parsed


class SslPrincipalMapper:
    def __init__(self, rules: str | None = DEFAULT_SSL_PRINCIPAL_MAPPING_RULES) -> None:
        self.rules = parse_rules(rules)

    def get_name(self, distinguished_name: str) -> str:
        for rule in self.rules:
            name = rule.apply(distinguished_name)
            if name is not None:
                return name
        rules = ", ".join(str(rule) for rule in self.rules)
        raise NoMatchingRule(f"No rules apply to {distinguished_name}, rules [{rules}]")


def _escape_literal_back_references(replacement: str, group_count: int) -> str:
    """Treat a `$n` naming a group the pattern does not have as the literal text `$n`
    (Kafka takes this from Apache NiFi): `$4` with three groups stays `$4`. A long number
    is first shortened to a group that exists: `$12` with three groups is `$1` then `2`."""
    if group_count == 0:
        return replacement
    out = []
    last = 0
    for reference in _BACK_REFERENCE.finditer(replacement):
        digits = reference.group(1)
        if digits.startswith("0"):
            continue
        index = int(digits)
        while index > group_count and index >= 10:
            index //= 10
        if index > group_count:
            out.append(replacement[last:reference.start()])
            out.append("\\")
            last = reference.start()
    out.append(replacement[last:])
    return "".join(out)


def _java_replacement(replacement: str, match: re.Match[str], group_count: int) -> str:
    """Expand a java.util.regex replacement string for one match: `$n` and `${name}` are
    groups (the longest number naming an existing group), a backslash quotes the next
    character."""
    out = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\":
            i += 1
            if i == len(replacement):
                raise ValueError("character to be escaped is missing")
            out.append(replacement[i])
            i += 1
        elif char == "$":
            i += 1
            if i == len(replacement):
                raise ValueError("Illegal group reference: group index is missing")
            if replacement[i] == "{":
                end = replacement.find("}", i)
                if end < 0:
                    raise ValueError("named capturing group is missing trailing '}'")
                out.append(match.group(replacement[i + 1:end]) or "")
                i = end + 1
                continue
            if replacement[i] not in _DIGITS:
                raise ValueError("Illegal group reference")
            group = int(replacement[i])
            i += 1
            if group > group_count:
                raise ValueError(f"No group {group}")
            while i < len(replacement) and replacement[i] in _DIGITS:
                longer = group * 10 + int(replacement[i])
                if longer > group_count:
                    break
                group = longer
                i += 1
            out.append(match.group(group) or "")
        else:
            out.append(char)
            i += 1
    return "".join(out)
