"""Kafka's JAAS text (sasl.jaas.config): the grammar, quoting, and errors that say why."""
import pytest

from moldau.server.security.jaas import PLAIN_LOGIN_MODULE, JaasError, parse_jaas_config, parse_single_module


def test_kafka_plain_example() -> None:
    module = parse_single_module(
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
    assert module.class_name == PLAIN_LOGIN_MODULE
    assert module.flag == "required"
    assert module.options["username"] == "admin"
    assert module.options["password"] == "admin-secret"
    assert module.plain_users == {"admin": "admin-secret", "alice": "alice-secret"}


def test_quotes_escapes_comments_and_line_breaks() -> None:
    module = parse_single_module(
        "// a comment\n"
        "org.apache.kafka.common.security.scram.ScramLoginModule   Required\n"
        '  username=bob /* unquoted word */\n'
        "  password='it\\'s' \n"
        '  other="semi;colon=and \\"quote\\" and back\\\\slash"\n'
        " ;")
    assert module.flag == "required"
    assert module.options == {"username": "bob", "password": "it's",
                              "other": 'semi;colon=and "quote" and back\\slash'}


def test_several_modules_are_parsed_but_sasl_jaas_config_takes_one() -> None:
    text = "a.B required x=\"1\"; c.D optional;"
    assert [m.class_name for m in parse_jaas_config(text)] == ["a.B", "c.D"]
    with pytest.raises(JaasError, match="contains 2 login modules, should be 1"):
        parse_single_module(text)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "no login module"),
        ('a.B required username="x"', "missing ';'"),
        ('a.B username="x";', "invalid control flag 'username'"),
        ("a.B mandatory;", "invalid control flag 'mandatory'"),
        ("a.B;", "no control flag"),
        ('a.B required username;', "option 'username' has no value"),
        ('a.B required username=;', "option 'username' has no value"),
        ('a.B required username="x;', "unterminated quoted value"),
        ('a.B required /* x', "unterminated /\\* comment"),
        ('a.B required user@="x";', "unexpected character '@'"),
        ('"a.B" required;', "expected a login module class name"),
    ],
)
def test_malformed_is_refused_with_the_reason(text: str, needle: str) -> None:
    with pytest.raises(JaasError, match=needle):
        parse_jaas_config(text)
