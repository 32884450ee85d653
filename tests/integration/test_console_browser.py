"""The web console in a real headless browser (Debian's chromium driven by Playwright)
against a live broker: create a topic, produce, browse, watch the high watermark and a
group's lag change live, reset offsets, and bad input shown as a message.

One broker, one console process and one browser serve the whole module. Screenshots go
to a temp dir, or to $MOLDAU_CONSOLE_SCREENSHOTS (`make screenshots` sets docs/console).
Under-replicated partitions need a cluster: tests/cluster/test_cluster_cli.py shows them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from playwright.sync_api import Browser, Page, expect

from tests.browser import chromium, screenshot_dir
from tests.helpers import BrokerProcess, free_port

BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "0", "broker.rack": "rack-a"}
LIVE_TIMEOUT_MS = 15_000  # a live view refreshes every 0.5 s here; the cluster may be slow


class ConsoleProcess:
    """`moldau console` as a child process on a free port, with its own log file."""

    def __init__(self, bootstrap: str, log_path: Path, timeout_s: float = 5.0) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.args = [
            sys.executable, "-m", "moldau.cli.main", "console",
            "--bootstrap-server", bootstrap, "--port", str(self.port),
            "--refresh", "0.5", "--timeout", str(timeout_s),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ConsoleProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"console exited with {self.proc.returncode}:\n{self.log()}")
            if "ready on" in self.log():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"console did not start within {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    b = BrokerProcess(tmp_path_factory.mktemp("console-broker"), BROKER_OVERRIDES)
    b.start()
    try:
        yield b
    finally:
        b.kill()
        print(f"\n===== broker log =====\n{b.log()[-5000:]}")


@pytest.fixture(scope="module")
def console(broker: BrokerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    c = ConsoleProcess(broker.bootstrap, tmp_path_factory.mktemp("console") / "console.log")
    c.start()
    try:
        yield c
    finally:
        c.kill()
        print(f"\n===== console log =====\n{c.log()[-5000:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=LIVE_TIMEOUT_MS)
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser, console: ConsoleProcess) -> Iterator[Page]:
    context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(LIVE_TIMEOUT_MS)
    pg = context.new_page()
    pg.on("dialog", lambda dialog: dialog.accept())  # the delete confirmations
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("screenshots"))


def screenshot(pg: Page, shots: Path, name: str) -> None:
    pg.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker: BrokerProcess, name: str, partitions: int = 1) -> None:
    client = admin(broker)  # kept referenced until the futures complete
    for future in client.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)


def produce(broker: BrokerProcess, topic: str, values: list[bytes], partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for value in values:
        producer.produce(topic, value=value, key=b"k", partition=partition)
    assert producer.flush(30) == 0


def consume_and_commit(broker: BrokerProcess, group: str, topic: str, count: int) -> Consumer:
    """A group member that has read and committed `count` records; still in the group."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "client.id": "lag-watcher",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 30
    while seen < count and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=0.5):
            assert msg.error() is None, msg.error()
            seen += 1
    assert seen == count
    consumer.commit(asynchronous=False)
    return consumer


# --------------------------------------------------------------------------- tests


def test_brokers_page_shows_the_live_broker_and_the_controller(page: Page, shots: Path) -> None:
    page.goto("/")
    row = page.locator("#brokers tr[data-broker='0']")
    expect(row).to_contain_text("live")
    expect(row).to_contain_text("controller")
    expect(row).to_contain_text("rack-a")
    expect(page.locator("#controller")).to_have_text("broker 0")
    screenshot(page, shots, "brokers")


def test_create_topic_produce_browse_search_and_export(page: Page, shots: Path) -> None:
    topic = unique("orders")
    page.goto("/topics")
    form = page.locator("#create-topic")
    form.locator("input[name=name]").fill(topic)
    form.locator("input[name=partitions]").fill("3")
    form.locator("textarea[name=configs]").fill("retention.ms=3600000")
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"created topic {topic}")
    expect(page.locator("#partitions tbody tr")).to_have_count(3)
    override = page.locator("#configs tr[data-config='retention.ms']")
    expect(override).to_contain_text("3600000")
    expect(override).to_contain_text("DYNAMIC_TOPIC_CONFIG")

    page.goto(f"/produce?topic={topic}")
    form = page.locator("#produce")
    form.locator("input[name=partition]").fill("1")
    form.locator("input[name=key]").fill("order-1")
    form.locator("textarea[name=value]").fill('{"sku":"X1","qty":2}')
    form.locator("textarea[name=headers]").fill("trace=abc-123")
    screenshot(page, shots, "produce")
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"written to {topic} partition 1 at offset 0")
    form = page.locator("#produce")
    form.locator("input[name=partition]").fill("2")
    form.locator("input[name=key]").fill("order-2")
    form.locator("textarea[name=value]").fill('{"sku":"Y7","qty":1}')
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"written to {topic} partition 2 at offset 0")

    page.goto(f"/topics/{topic}/messages")
    browse = page.locator("#browse")
    browse.locator("select[name=position]").select_option("beginning")
    browse.locator("select[name=format]").select_option("json")
    browse.locator("button[type=submit]").click()
    rows = page.locator("#messages tr.message")
    expect(rows).to_have_count(2)
    first = page.locator("#messages tr.message[data-partition='1'][data-offset='0']")
    expect(first.locator(".key")).to_have_text("order-1")
    expect(first.locator(".value")).to_have_text('{\n  "sku": "X1",\n  "qty": 2\n}')
    expect(first.locator(".headers")).to_have_text("trace: abc-123")
    screenshot(page, shots, "messages")

    browse.locator("select[name=format]").select_option("hex")
    browse.locator("button[type=submit]").click()
    expect(first.locator(".key")).to_have_text(b"order-1".hex(" "))

    browse.locator("select[name=format]").select_option("text")
    browse.locator("input[name=search]").fill("Y7")
    browse.locator("select[name=search_in]").select_option("value")
    browse.locator("button[type=submit]").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".key")).to_have_text("order-2")
    expect(page.locator("#browse-summary")).to_contain_text("1 message(s) matching, 2 scanned")
    browse.locator("select[name=search_in]").select_option("key")
    browse.locator("button[type=submit]").click()
    expect(rows).to_have_count(0)  # "Y7" is in a value, not a key

    browse.locator("input[name=search]").fill("")
    browse.locator("button[type=submit]").click()
    with page.expect_download() as download:
        page.locator("#export-json").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert sorted((r["partition"], r["offset"], r["key"], r["value"], r["headers"]) for r in exported) == [
        (1, 0, "order-1", '{"sku":"X1","qty":2}', {"trace": "abc-123"}),
        (2, 0, "order-2", '{"sku":"Y7","qty":1}', {}),
    ]
    with page.expect_download() as download:
        page.locator("#export-csv").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "topic,partition,offset,timestamp,key,value,headers" and len(lines) == 3


def test_high_watermark_and_size_update_live(page: Page, broker: BrokerProcess, shots: Path) -> None:
    topic = unique("live")
    create_topic(broker, topic, partitions=2)
    produce(broker, topic, [b"a"] * 3)
    page.goto(f"/topics/{topic}")
    hw = page.locator("#partitions tr[data-partition='0'] .hw")
    expect(hw).to_have_text("3")
    expect(page.locator("#partitions tr[data-partition='0'] .isr")).to_have_text("0")
    size_before = page.locator("#partitions tr[data-partition='0'] .size").inner_text()
    assert size_before.endswith("B") and size_before != "0 B"
    produce(broker, topic, [b"b" * 100] * 5)
    expect(hw).to_have_text("8")  # no reload: the live view brought it
    assert page.locator("section[data-live]").get_attribute("data-updates") is not None
    expect(page.locator("#partitions tr[data-partition='0'] .size")).not_to_have_text(size_before)
    screenshot(page, shots, "topic")


def test_live_tail_shows_new_messages(page: Page, broker: BrokerProcess) -> None:
    topic = unique("tail")
    create_topic(broker, topic)
    page.goto(f"/topics/{topic}/messages")
    expect(page.locator("#messages tr.message")).to_have_count(0)
    page.locator("#tail-toggle").click()
    expect(page.locator("#tail-status")).to_have_text("waiting for new messages…")
    # The tail's consumer starts at the end when it is assigned; produce until one shows.
    deadline = time.monotonic() + LIVE_TIMEOUT_MS / 1000
    rows = page.locator("#messages tr.message")
    while rows.count() == 0 and time.monotonic() < deadline:
        produce(broker, topic, [b"tailed-record"])
        page.wait_for_timeout(500)
    expect(rows.first.locator(".value")).to_have_text("tailed-record")
    expect(page.locator("#tail-status")).to_have_text("tailing")


def test_group_lag_updates_live_and_offsets_reset(page: Page, broker: BrokerProcess, shots: Path) -> None:
    topic, group = unique("lag"), unique("billing")
    create_topic(broker, topic)
    produce(broker, topic, [b"x"] * 10)
    consumer = consume_and_commit(broker, group, topic, 10)
    try:
        page.goto(f"/groups/{group}")
        expect(page.locator("#group-state")).to_have_text("stable")
        expect(page.locator("#total-lag")).to_have_text("0")
        row = page.locator(f"#lag tr[data-topic='{topic}'][data-partition='0']")
        expect(row).to_contain_text("lag-watcher")
        produce(broker, topic, [b"y"] * 7)
        expect(page.locator("#total-lag")).to_have_text("7")
        expect(row.locator(".lag")).to_have_text("7")
        screenshot(page, shots, "group")

        # Kafka resets only a group without members: the page says so.
        page.locator("#reset-offsets select[name=strategy]").select_option("earliest")
        page.locator("#reset-offsets button[type=submit]").click()
        expect(page.locator(".error")).to_contain_text("stop its consumers first")
    finally:
        consumer.close()

    expect(page.locator("#group-state")).to_have_text("empty")
    page.locator("#reset-offsets select[name=strategy]").select_option("earliest")
    page.locator("#reset-offsets button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"offsets reset: {topic}-0→0")
    expect(page.locator("#total-lag")).to_have_text("17")

    page.locator("#reset-offsets select[name=strategy]").select_option("offset")
    page.locator("#reset-offsets input[name=value]").fill("12")
    page.locator("#reset-offsets input[name=topic]").fill(topic)
    page.locator("#reset-offsets button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"offsets reset: {topic}-0→12")
    expect(page.locator("#total-lag")).to_have_text("5")

    page.locator("#reset-offsets select[name=strategy]").select_option("latest")
    page.locator("#reset-offsets input[name=topic]").fill("")
    page.locator("#reset-offsets button[type=submit]").click()
    expect(page.locator("#total-lag")).to_have_text("0")

    page.goto("/groups")
    expect(page.locator(f"#groups tr[data-group='{group}']")).to_contain_text("empty")
    screenshot(page, shots, "groups")
    page.goto(f"/groups/{group}")
    page.locator("#delete-group button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"deleted group {group}")
    expect(page.locator(f"#groups tr[data-group='{group}']")).to_have_count(0)


def test_topic_admin_add_partitions_edit_configs_delete(page: Page, broker: BrokerProcess, shots: Path) -> None:
    topic = unique("admin")
    create_topic(broker, topic)
    page.goto(f"/topics/{topic}")
    page.locator("#add-partitions input[name=count]").fill("3")
    page.locator("#add-partitions button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"{topic} now has 3 partitions")
    expect(page.locator("#partitions tbody tr")).to_have_count(3)

    config = page.locator("#configs tr[data-config='cleanup.policy']")
    expect(config).to_contain_text("DEFAULT_CONFIG")
    page.locator("#edit-config input[name=name]").fill("cleanup.policy")
    page.locator("#edit-config input[name=value]").fill("compact")
    page.locator("#edit-config button[value=set]").click()
    expect(page.locator(".notice")).to_have_text("set cleanup.policy=compact")
    expect(config).to_contain_text("compact")
    expect(config).to_contain_text("DYNAMIC_TOPIC_CONFIG")
    page.locator("#edit-config input[name=name]").fill("cleanup.policy")
    page.locator("#edit-config button[value=delete]").click()
    expect(page.locator(".notice")).to_have_text("reset cleanup.policy")
    expect(config).to_contain_text("DEFAULT_CONFIG")

    page.locator("#edit-config input[name=name]").fill("no.such.config")
    page.locator("#edit-config input[name=value]").fill("1")
    page.locator("#edit-config button[value=set]").click()
    expect(page.locator(".error")).to_contain_text("change no.such.config")

    page.goto("/topics")
    screenshot(page, shots, "topics")
    page.goto(f"/topics/{topic}")
    page.locator("#delete-topic button[type=submit]").click()
    expect(page.locator(".notice")).to_have_text(f"deleted topic {topic}")
    expect(page.locator(f"#topics tr[data-topic='{topic}']")).to_have_count(0)


def test_bad_input_is_a_message_in_the_page(page: Page, broker: BrokerProcess) -> None:
    topic = unique("bad")
    create_topic(broker, topic, partitions=2)
    # The browser's own form checks are switched off to reach the server's.
    page.goto("/topics")
    page.evaluate("document.querySelector('#create-topic').noValidate = true")
    page.locator("#create-topic input[name=name]").fill("no spaces allowed")
    page.locator("#create-topic button[type=submit]").click()
    expect(page.locator(".error")).to_contain_text("may contain only ASCII letters")

    page.locator("#create-topic input[name=name]").fill(topic)
    page.locator("#create-topic button[type=submit]").click()
    expect(page.locator(".error")).to_contain_text("TOPIC_ALREADY_EXISTS")

    page.goto(f"/topics/{topic}")
    page.evaluate("document.querySelector('#add-partitions').noValidate = true")
    page.locator("#add-partitions input[name=count]").fill("1")
    page.locator("#add-partitions button[type=submit]").click()
    expect(page.locator(".error")).to_contain_text("partitions can only be added")

    for url, message, status in [
        (f"/topics/{topic}/messages?position=offset&offset=abc", "offset: not a whole number", 400),
        (f"/topics/{topic}/messages?partition=9", "the topic has partitions 0..1, not 9", 400),
        (f"/topics/{topic}/messages?position=timestamp&timestamp=soon", "timestamp: expected epoch", 400),
        ("/topics/does-not-exist", "does not exist (UNKNOWN_TOPIC_OR_PART)", 404),
        (f"/topics/{topic}/delete", "Method Not Allowed", 405),
        ("/no/such/page", "no such page", 404),
    ]:
        response = page.goto(url)
        assert response.status == status, url
        body = page.locator("body").inner_text()
        assert message in body, (url, body)
        assert "Traceback" not in body


def test_group_ids_with_any_characters(page: Page) -> None:
    page.goto("/groups/team%2Fbilling%3Fx")
    expect(page.locator("#group-name")).to_have_text("team/billing?x")
    expect(page.locator("#group-state")).to_have_text("dead")  # Kafka: an unknown group is dead
    page.locator("#reset-offsets button[type=submit]").click()
    expect(page.locator("#group-name")).to_have_text("team/billing?x")
    expect(page.locator(".error")).to_contain_text("no committed offsets")


def test_replication_page(page: Page, shots: Path) -> None:
    page.goto("/replication")
    expect(page.locator("#health-summary")).to_contain_text("all in sync")
    expect(page.locator("#offline tbody")).to_contain_text("None.")
    screenshot(page, shots, "replication")


@pytest.mark.parametrize("broker_kind", ["refusing", "silent"])
def test_an_unreachable_or_silent_cluster_is_a_timeout_in_the_page(
    browser: Browser, tmp_path: Path, broker_kind: str
) -> None:
    """Refusing: nothing listens. Silent: a socket that accepts connections (the kernel
    completes the handshake) and never answers, like a paused broker."""
    port = free_port()
    silent = socket.create_server(("127.0.0.1", port)) if broker_kind == "silent" else None
    dead = ConsoleProcess(f"127.0.0.1:{port}", tmp_path / "console.log", timeout_s=1.0).start()
    try:
        context = browser.new_context(base_url=dead.url)
        try:
            pg = context.new_page()
            for path in ("/topics", "/groups/g"):
                started = time.monotonic()
                response = pg.goto(path, timeout=30_000)
                assert response.status == 504, (path, pg.locator("body").inner_text())
                expect(pg.locator(".error")).to_contain_text("the cluster did not answer")
                assert time.monotonic() - started < 10  # bounded by the console's timeout, not hung
        finally:
            context.close()
    finally:
        dead.kill()
        if silent is not None:
            silent.close()
