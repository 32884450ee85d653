"""Principals: parsing, SASL and SSL principals, the RFC 2253 DN of a certificate subject,
and `ssl.principal.mapping.rules` with Kafka's rule grammar and errors."""
from __future__ import annotations

import pytest

from moldau.authorizer.principal import (
    ANONYMOUS,
    KafkaPrincipal,
    distinguished_name,
    parse_kafka_principal,
    sasl_principal,
    ssl_principal,
)
from moldau.authorizer.ssl_principal_mapper import NoMatchingRule, SslPrincipalMapper, parse_rules


def test_parse_kafka_principal() -> None:
    assert parse_kafka_principal("User:alice") == KafkaPrincipal("User", "alice")
    assert parse_kafka_principal("User:CN=a:b") == KafkaPrincipal("User", "CN=a:b")
    assert str(KafkaPrincipal("User", "*")) == "User:*"
    for bad in ("", "alice"):
        with pytest.raises(ValueError, match="expected a string in format principalType:principalName"):
            parse_kafka_principal(bad)


def test_sasl_and_ssl_principals() -> None:
    assert str(sasl_principal("alice")) == "User:alice"
    mapper = SslPrincipalMapper()
    assert ssl_principal(mapper, None) == ANONYMOUS
    assert str(ssl_principal(mapper, "CN=alice,O=Acme")) == "User:CN=alice,O=Acme"


def test_distinguished_name_is_rfc2253_as_java_writes_it() -> None:
    subject = (
        (("countryName", "US"),),
        (("organizationName", "Acme, Inc."),),
        (("organizationalUnitName", "Eng"),),
        (("commonName", "alice"),),
    )
    assert distinguished_name(subject) == "CN=alice,OU=Eng,O=Acme\\, Inc.,C=US"
    assert distinguished_name(((("commonName", "a"), ("userId", "7")),)) == "CN=a+UID=7"
    assert distinguished_name(((("emailAddress", "a@b.c"),), (("commonName", "a"),))) == (
        "CN=a,1.2.840.113549.1.9.1=#1605614062 2e63".replace(" ", ""))
    assert distinguished_name(((("commonName", " #lead"),),)) == "CN=\\ #lead"


MAPPING_RULES = (
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, "
    "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, "
    "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U, "
    "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, "
    "DEFAULT"
)


@pytest.mark.parametrize(("dn", "name"), [
    ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
    ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
    ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
    ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
    ("OU=JavaSoft,O=Sun Microsystems,C=US", "OU=JavaSoft,O=Sun Microsystems,C=US"),
])
def test_rules_map_names_first_applying_rule_wins(dn: str, name: str) -> None:
    assert SslPrincipalMapper(MAPPING_RULES).get_name(dn) == name


@pytest.mark.parametrize("rules", [
    "DEFAULT",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
    "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
    "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
    "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
    "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
    "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
])
def test_valid_rules(rules: str) -> None:
    assert parse_rules(rules)


@pytest.mark.parametrize(("rules", "message"), [
    ("default", "Invalid rule: `default`, unmatched substring: `default`"),
    ("DEFAUL", "Invalid rule: `DEFAUL`, unmatched substring: `DEFAUL`"),
    ("DEFAULT/L", "Invalid rule: `DEFAULT/L`, unmatched substring: `/L`"),
    ("DEFAULT/U", "Invalid rule: `DEFAULT/U`, unmatched substring: `/U`"),
    ("RULE:CN=(.*?),OU=ServiceUsers.*/$1", "unmatched substring"),
    ("rule:^CN=(.*?),OU=ServiceUsers.*$/$1/", "unmatched substring"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U", "Invalid rule: `RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U`, "
                                                  "unmatched substring: `/U`"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/L", "unmatched substring"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/U", "unmatched substring"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/LU", "unmatched substring"),
])
def test_invalid_rules_fail_with_kafkas_message(rules: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_rules(rules)
    assert message in str(refused.value)


def test_no_matching_rule() -> None:
    mapper = SslPrincipalMapper("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/")
    assert mapper.get_name("CN=Duke,OU=ServiceUsers") == "Duke"
    with pytest.raises(NoMatchingRule, match=r"No rules apply to CN=Duke,OU=Other, rules \[RULE:\^CN=\(\.\*\?\),"
                                             r"OU=ServiceUsers\.\*\$/\$1\]"):
        mapper.get_name("CN=Duke,OU=Other")
    with pytest.raises(NoMatchingRule):
        SslPrincipalMapper("").get_name("CN=x")  # an empty value has no rules, not DEFAULT


def test_escaped_slash_and_back_references() -> None:
    assert SslPrincipalMapper(r"RULE:^CN=(.*?),OU=(.*?)$/$1\/$2/").get_name("CN=a,OU=b") == "a/b"
    assert SslPrincipalMapper(r"RULE:^CN=(.*?)\/x,OU=(.*?)$/$2/").get_name("CN=a/x,OU=b") == "b"
    # A group the pattern does not have is literal text; a long number names the longest group that exists.
    assert SslPrincipalMapper("RULE:^CN=(.*?),OU=(.*?)$/$1@$4/").get_name("CN=a,OU=b") == "a@$4"
    assert SslPrincipalMapper("RULE:^CN=(.*?),OU=(.*?)$/$12/").get_name("CN=a,OU=b") == "a2"
    assert SslPrincipalMapper("RULE:^CN=(.*?),OU=(.*?)$/$0/U").get_name("CN=a,OU=b") == "CN=A,OU=B"
    assert SslPrincipalMapper("RULE:^CN=(?<user>.*?),OU=.*$/${user}/").get_name("CN=a,OU=b") == "a"


def test_rules_tolerate_spaces_and_keep_order() -> None:
    rules = parse_rules("  RULE:^CN=(.*?),.*$/$1/L ,  DEFAULT  ")
    assert [str(r) for r in rules] == ["RULE:^CN=(.*?),.*$/$1/L", "DEFAULT"]
    assert [str(r) for r in parse_rules(None)] == ["DEFAULT"]
