"""The console's web layer: Starlette routes, Jinja2 pages, forms and live views.

A request runs one `queries` function on a worker thread (`offload`), bounded by the
console's timeout, and renders a page. Forms post and redirect back with a notice or an
error in the query string (POST-redirect-GET), so a reload never repeats an action.
Any `ConsoleError` becomes a page with its message and status; anything else a page
saying an internal error happened (logged with its traceback, never shown).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from moldau.console import groups, inputs, messages, produce, queries, topics
from moldau.console.errors import BadInput, ConsoleError, NotFound
from moldau.console.gateway import KafkaGateway
from moldau.console.live import event_stream, every, sse_event
from moldau.console.offload import WORKERS, offload

log = logging.getLogger("moldau.console")
HERE = Path(__file__).parent
T = TypeVar("T")

DEFAULT_REFRESH_S = 2.0
TAIL_POLL_S = 1.0


def human_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def group_url(group_id: str) -> str:
    """A group's page; the id quoted whole (Kafka allows any characters in it)."""
    return f"/groups/{quote(group_id, safe='')}"


def ids(values: Any) -> str:
    return ", ".join(str(v) for v in values)


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = inputs.format_timestamp
    env.filters["size"] = human_bytes
    env.filters["ids"] = ids
    env.filters["render"] = messages.render
    env.globals["Format"] = messages.Format
    return env


class Console:
    """The routes, bound to one gateway."""

    def __init__(self, gateway: KafkaGateway, timeout_s: float, refresh_s: float = DEFAULT_REFRESH_S) -> None:
        self.gateway = gateway
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.env = templates()

    # ------------------------------------------------------------------ helpers

    async def call(self, what: str, func: Callable[..., T], *args: object) -> T:
        # A page waits at most the console's timeout (plus a second for the client's own
        # timeout to win when it can, with its more precise message), however many calls
        # it makes to the cluster.
        return await offload(self.timeout_s + 1, what, func, self.gateway, *args)

    def html(self, template: str, request: Request | None = None, status: int = 200, **context: Any) -> HTMLResponse:
        if request is not None:
            context.setdefault("notice", request.query_params.get("notice"))
            context.setdefault("error", request.query_params.get("error"))
            context.setdefault("path", request.url.path)
        context.setdefault("bootstrap", self.gateway.bootstrap)
        return HTMLResponse(self.env.get_template(template).render(**context), status_code=status)

    def fragment(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    @staticmethod
    def back(url: str, **message: str) -> RedirectResponse:
        return RedirectResponse(f"{url}?{urlencode(message)}" if message else url, status_code=303)

    async def form(self, request: Request) -> dict[str, str]:
        data = await request.form()
        return {k: v for k, v in data.items() if isinstance(v, str)}

    async def live_fragment(self, render: Callable[[], Any]) -> str:
        """A live view's fragment, or its error in place of it (the stream goes on)."""
        try:
            return str(await render())
        except ConsoleError as e:
            return self.fragment("_error.html", error=e.message)

    # -------------------------------------------------------------------- pages

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/brokers", status_code=307)

    async def brokers(self, request: Request) -> Response:
        page = await self.call("brokers", queries.brokers_page)
        return self.html("brokers.html", request, page=page)

    async def brokers_live(self, request: Request) -> Response:
        async def render() -> str:
            page = await self.call("brokers", queries.brokers_page)
            return self.fragment("_brokers.html", page=page)

        return event_stream(request, every(self.refresh_s, lambda: self.live_fragment(render)))

    async def topics(self, request: Request) -> Response:
        rows = await self.call("topics", queries.topics_page)
        show_internal = request.query_params.get("internal") == "1"
        return self.html("topics.html", request, rows=rows, show_internal=show_internal)

    async def create_topic(self, request: Request) -> Response:
        form = await self.form(request)
        try:
            new = topics.parse_new_topic(form)
            await self.call("create topic", KafkaGateway.create_topic, new)
        except ConsoleError as e:
            return self.back("/topics", error=e.message)
        return self.back(f"/topics/{new.name}", notice=f"created topic {new.name}")

    async def topic(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])
        page = await self.call(f"topic {name}", queries.topic_page, name)
        return self.html("topic.html", request, topic=name, page=page, view=page.partitions)

    async def topic_live(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])

        async def render() -> str:
            view = await self.call(f"topic {name}", queries.partitions_view, name)
            return self.fragment("_partitions.html", view=view)

        return event_stream(request, every(self.refresh_s, lambda: self.live_fragment(render)))

    async def delete_topic(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])
        try:
            await self.call("delete topic", KafkaGateway.delete_topic, name)
        except ConsoleError as e:
            return self.back(f"/topics/{name}", error=e.message)
        return self.back("/topics", notice=f"deleted topic {name}")

    async def add_partitions(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])
        form = await self.form(request)
        try:
            current = len(await self.call(f"topic {name}", KafkaGateway.topic_partitions, name))
            count = topics.parse_partition_count(form, current)
            await self.call("add partitions", KafkaGateway.add_partitions, name, count)
        except ConsoleError as e:
            return self.back(f"/topics/{name}", error=e.message)
        return self.back(f"/topics/{name}", notice=f"{name} now has {count} partitions")

    async def alter_config(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])
        form = await self.form(request)
        try:
            change = topics.parse_config_change(form)
            await self.call("change config", KafkaGateway.alter_config, name, change)
        except ConsoleError as e:
            return self.back(f"/topics/{name}", error=e.message)
        done = f"set {change.name}={change.value}" if change.value is not None else f"reset {change.name}"
        return self.back(f"/topics/{name}", notice=done)

    async def browse(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])
        params = dict(request.query_params)
        try:
            result = await self.call(f"read {name}", queries.browse, name, params)
        except NotFound:
            raise
        except ConsoleError as e:
            return self.html(
                "messages.html", request, status=e.status, topic=name, params=params, result=None, error=e.message
            )
        return self.html(
            "messages.html", request, topic=name, params=params, result=result, export_query=urlencode(params)
        )

    async def export(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])
        params = dict(request.query_params)
        kind = params.pop("type", "json")
        if kind not in ("json", "csv"):
            raise BadInput("export: type must be json or csv")
        result = await self.call(f"read {name}", queries.browse, name, params)
        if kind == "csv":
            body, media = messages.export_csv(result.messages, result.query.format), "text/csv; charset=utf-8"
        else:
            body, media = messages.export_json(result.messages, result.query.format), "application/json"
        headers = {"Content-Disposition": f'attachment; filename="{name}.{kind}"'}
        return Response(body, media_type=media, headers=headers)

    async def tail(self, request: Request) -> Response:
        name = inputs.topic_name(request.path_params["topic"])
        states = await self.call(f"topic {name}", KafkaGateway.topic_partitions, name)
        query = messages.parse_browse_query(dict(request.query_params), len(states))
        wanted = [s.partition for s in states] if query.partition is None else [query.partition]
        tail = await offload(self.timeout_s, f"tail {name}", self.gateway.open_tail, name, wanted)

        async def next_event() -> str | None:
            try:
                found = await offload(self.timeout_s + TAIL_POLL_S, "tail", tail.poll, TAIL_POLL_S)
            except ConsoleError as e:
                return sse_event(self.fragment("_error.html", error=e.message), "problem")
            found = [m for m in found if messages.matches(m, query.search, query.search_in)]
            if not found:
                return ": idle\n\n"  # a comment: keeps the connection open, shows nothing
            return sse_event(self.fragment("_message_rows.html", messages=found, fmt=query.format), "records")

        response = event_stream(request, next_event)
        stream = response.body_iterator

        async def closing() -> Any:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                # Not awaited: this may run while the response is being cancelled.
                asyncio.get_running_loop().run_in_executor(WORKERS, tail.close)

        response.body_iterator = closing()
        return response

    async def produce_form(self, request: Request) -> Response:
        names = [r.name for r in await self.call("topics", queries.topics_page) if not r.internal]
        return self.html("produce.html", request, topics=names, selected=request.query_params.get("topic", ""))

    async def produce(self, request: Request) -> Response:
        form = await self.form(request)
        topic = form.get("topic", "")
        try:
            record = produce.parse_produce(form)
            delivery = await self.call("produce", KafkaGateway.produce, record)
        except ConsoleError as e:
            return self.back("/produce", error=e.message, topic=topic)
        notice = f"written to {delivery.topic} partition {delivery.partition} at offset {delivery.offset}"
        return self.back("/produce", notice=notice, topic=delivery.topic)

    async def groups(self, request: Request) -> Response:
        rows = await self.call("groups", queries.groups_page)
        return self.html("groups.html", request, rows=rows)

    async def group(self, request: Request) -> Response:
        group_id = request.path_params["group"]
        page = await self.call(f"group {group_id}", queries.group_page, group_id)
        return self.html("group.html", request, page=page, group_id=group_id)

    async def group_live(self, request: Request) -> Response:
        group_id = request.path_params["group"]

        async def render() -> str:
            page = await self.call(f"group {group_id}", queries.group_page, group_id)
            return self.fragment("_group.html", page=page)

        return event_stream(request, every(self.refresh_s, lambda: self.live_fragment(render)))

    async def reset_group(self, request: Request) -> Response:
        group_id = request.path_params["group"]
        form = await self.form(request)
        try:
            reset = groups.parse_reset(form)
            targets = await self.call("reset offsets", queries.reset_offsets, group_id, reset)
        except ConsoleError as e:
            return self.back(group_url(group_id), error=e.message)
        moved = ", ".join(f"{t}-{p}→{o}" for (t, p), o in sorted(targets.items()))
        return self.back(group_url(group_id), notice=f"offsets reset: {moved}")

    async def delete_group(self, request: Request) -> Response:
        group_id = request.path_params["group"]
        try:
            await self.call("delete group", KafkaGateway.delete_group, group_id)
        except ConsoleError as e:
            return self.back(group_url(group_id), error=e.message)
        return self.back("/groups", notice=f"deleted group {group_id}")

    async def replication(self, request: Request) -> Response:
        health = await self.call("replication", queries.replication_page)
        return self.html("replication.html", request, health=health)

    async def replication_live(self, request: Request) -> Response:
        async def render() -> str:
            health = await self.call("replication", queries.replication_page)
            return self.fragment("_replication.html", health=health)

        return event_stream(request, every(self.refresh_s, lambda: self.live_fragment(render)))

    # ------------------------------------------------------------------- errors

    async def console_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleError)
        return self.html("error.html", request, status=exc.status, error=exc.message)

    async def internal_error(self, request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        message = f"internal error ({type(exc).__name__}); the console's log has the details"
        return self.html("error.html", request, status=500, error=message)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.html("error.html", request, status=404, error=f"no such page: {request.url.path}")


def create_app(gateway: KafkaGateway, timeout_s: float, refresh_s: float = DEFAULT_REFRESH_S) -> Starlette:
    c = Console(gateway, timeout_s, refresh_s)
    routes = [
        Route("/", c.home),
        Route("/brokers", c.brokers),
        Route("/brokers/live", c.brokers_live),
        Route("/topics", c.topics),
        Route("/topics", c.create_topic, methods=["POST"]),
        Route("/topics/{topic}", c.topic),
        Route("/topics/{topic}/live", c.topic_live),
        Route("/topics/{topic}/delete", c.delete_topic, methods=["POST"]),
        Route("/topics/{topic}/partitions", c.add_partitions, methods=["POST"]),
        Route("/topics/{topic}/configs", c.alter_config, methods=["POST"]),
        Route("/topics/{topic}/messages", c.browse),
        Route("/topics/{topic}/messages/export", c.export),
        Route("/topics/{topic}/messages/tail", c.tail),
        Route("/produce", c.produce_form),
        Route("/produce", c.produce, methods=["POST"]),
        Route("/groups", c.groups),
        # Group ids may contain '/': `path` matches it; the actions come first.
        Route("/groups/{group:path}/live", c.group_live),
        Route("/groups/{group:path}/reset", c.reset_group, methods=["POST"]),
        Route("/groups/{group:path}/delete", c.delete_group, methods=["POST"]),
        Route("/groups/{group:path}", c.group),
        Route("/replication", c.replication),
        Route("/replication/live", c.replication_live),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={ConsoleError: c.console_error, 404: c.not_found, Exception: c.internal_error},
    )
