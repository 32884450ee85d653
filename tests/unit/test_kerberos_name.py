"""Kerberos principal names and sasl.kerberos.principal.to.local.rules, with the cases of
Kafka's KerberosNameTest (parse, /L, /U, invalid rules) and the errors Kafka raises."""
import pytest

from moldau.server.security.kerberos_name import KerberosName, KerberosNameError, KerberosShortNamer


def short(rules: list[str], principal: str, realm: str = "REALM.COM") -> str:
    return KerberosShortNamer(realm, rules).short_name(KerberosName.parse(principal))


def test_parse_and_default_rule() -> None:
    name = KerberosName.parse("App.service-name/example.com@REALM.COM")
    assert (name.service_name, name.host_name, name.realm) == ("App.service-name", "example.com", "REALM.COM")
    assert str(name) == "App.service-name/example.com@REALM.COM"
    assert KerberosName.parse("alice") == KerberosName("alice")
    with pytest.raises(KerberosNameError, match="Malformed Kerberos name: a@b@c"):
        KerberosName.parse("a@b@c")
    rules = [r"RULE:[1:$1](App\..*)s/App\.(.*)/$1/g", r"RULE:[2:$1](App\..*)s/App\.(.*)/$1/g", "DEFAULT"]
    assert short(rules, "App.service-name/example.com@REALM.COM") == "service-name"
    assert short(rules, "App.service-name@REALM.COM") == "service-name"
    assert short(rules, "user/host@REALM.COM") == "user"
    # DEFAULT: the first component, in the default realm only.
    assert short([], "kafka/broker1.example.com@REALM.COM") == "kafka"
    assert short(["DEFAULT"], "alice") == "alice"  # already simple
    with pytest.raises(KerberosNameError, match=r"No rules apply to alice@OTHER.COM, rules \[DEFAULT\]"):
        short(["DEFAULT"], "alice@OTHER.COM")


@pytest.mark.parametrize("case,expected", [("L", ["user", "test", "xyz_user_xyz", "service-name", "user"]),
                                           ("U", ["USER", "TEST", "XYZ_USER_XYZ", "SERVICE-NAME", "USER"])])
def test_lower_and_upper_case(case: str, expected: list[str]) -> None:
    rules = [f"RULE:[1:$1]/{case}", f"RULE:[2:$1](Test.*)s/ABC///{case}", f"RULE:[2:$1](ABC.*)s/ABC/XYZ/g/{case}",
             rf"RULE:[2:$1](App\..*)s/App\.(.*)/$1/g/{case}", f"RULE:[2:$1]/{case}", "DEFAULT"]
    names = ["User@REALM.COM", "TestABC/host@FOO.COM", "ABC_User_ABC/host@FOO.COM",
             "App.SERVICE-name/example.com@REALM.COM", "User/root@REALM.COM"]
    assert [short(rules, n) for n in names] == expected


def test_formats_matches_and_substitutions() -> None:
    # $0 is the realm; the match must cover the whole formatted string; without g, the first match only.
    rules = [r"RULE:[2:$1@$0](kafka@PROD\.COM)s/.*/broker/", r"RULE:[1:$1@$0](.*@PROD\.COM)s/@.*//",
             r"RULE:[1:$1](a+)s/a/b/"]
    assert short(rules, "kafka/host1@PROD.COM") == "broker"
    assert short(rules, "svc@PROD.COM") == "svc"
    assert short(rules, "aaa@ELSEWHERE") == "baa"
    with pytest.raises(KerberosNameError, match="No rules apply to kafka/host1@TEST.COM"):
        short(rules, "kafka/host1@TEST.COM")
    # A result still holding / or @ is refused, not passed on.
    with pytest.raises(KerberosNameError, match="Non-simple name alice@PROD.COM after auth_to_local rule"):
        short([r"RULE:[1:$1@$0]"], "alice@PROD.COM")
    with pytest.raises(KerberosNameError, match="index 3 from .* outside of the valid range 0 to 2"):
        short([r"RULE:[2:$3]"], "a/b@R")


@pytest.mark.parametrize("rule", ["default", "DEFAUL", "DEFAULT/L", "DEFAULT/g", "rule:[1:$1]", "RULE:[1:$1]/LU",
                                  "RULE:[1:$1]/UL", "RULE:[1:$1]/LL", "RULE:[1:$1]/UU", "RULE:[1:$1]/gg",
                                  "RULE:[1:$1]/gL", "RULE:[:$1]", "RULE:[1:$1](a(b)", "RULE:[1:$1]s/(/x/"])
def test_invalid_rules(rule: str) -> None:
    with pytest.raises(KerberosNameError, match="Invalid rule"):
        KerberosShortNamer("REALM.COM", [rule])
