"""The ``citydesk`` command: local stack, tokens, contracts, DLQ replay, services."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from citydesk.stack import KAFKA_STORE_ROLES, Stack, StackConfig, StackError
from shared.contracts import IntakeRules

app = typer.Typer(help="CityDesk: the education bureau's publicity desk.", no_args_is_help=True)
stack_app = typer.Typer(help="The embedded local stack (Kafka, MongoDB and S3 on loopback).")
contracts_app = typer.Typer(help="Event contracts: JSON Schema and AsyncAPI.")
dlq_app = typer.Typer(help="Dead-letter topics.")
demo_app = typer.Typer(help="The demo city: stack, services and a month of work.")
bus_app = typer.Typer(help="Who writes on the bus: signing keys for services and counties.")
dashboards_app = typer.Typer(help="The chart's Grafana dashboards, rendered without Grafana.")
app.add_typer(stack_app, name="stack")
app.add_typer(contracts_app, name="contracts")
app.add_typer(dlq_app, name="dlq")
app.add_typer(demo_app, name="demo")
app.add_typer(bus_app, name="bus")
app.add_typer(dashboards_app, name="dashboards")

StackDir = Annotated[Path, typer.Option("--dir", help="Where the stack keeps its data.")]
SERVICES = ("submission", "media", "review", "scoring", "sentiment", "console")


def _stack(root: Path) -> Stack:
    return Stack(StackConfig.load(root))


@stack_app.command("up")
def stack_up(
    root: StackDir = Path(".stack"),
    kafka_port: int = 19092,
    mongo_port: int = 27117,
    s3_port: int = 19000,
    s3_metrics_port: int = 19567,
    kafka_store_port: Annotated[
        int, typer.Option(help="First of 8 ports for Kafka's own S3 store (SeaweedFS).")
    ] = 19300,
    memory: Annotated[bool, typer.Option(help="Kafka in memory: fast, lost on stop.")] = False,
) -> None:
    """Start the servers that are not running and wait until each answers."""
    config = StackConfig.load(root)
    if not (root / "stack.json").exists():
        config = StackConfig(
            root=root, kafka_port=kafka_port, mongo_port=mongo_port, s3_port=s3_port,
            s3_metrics_port=s3_metrics_port, kafka_storage="memory" if memory else "s3",
            kafka_store_ports=[kafka_store_port + i for i in range(len(KAFKA_STORE_ROLES))],
        )  # fmt: skip
    try:
        timings = Stack(config).up()
    except StackError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    for name, seconds in timings.items():
        typer.echo(f"{name}: answered in {seconds:.2f}s")
    _print_status(Stack(config))


def _print_status(stack: Stack) -> None:
    for row in stack.status():
        typer.echo(f"{row['server']:6} {row['state']:8} pid {row['pid']:>7}  {row['address']}")


@stack_app.command("status")
def stack_status(root: StackDir = Path(".stack")) -> None:
    """Show each server, its state and its address."""
    stack = _stack(root)
    _print_status(stack)
    if any(row["state"] != "running" for row in stack.status()):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down(root: StackDir = Path(".stack")) -> None:
    """Stop every server; data stays."""
    _stack(root).down()
    typer.echo("stopped")


@stack_app.command("reset")
def stack_reset(root: StackDir = Path(".stack")) -> None:
    """Stop every server and delete all its data."""
    _stack(root).reset()
    typer.echo(f"removed {root}")


@stack_app.command("env")
def stack_env(root: StackDir = Path(".stack")) -> None:
    """Print the CITYDESK_* settings that point services at this stack (for `eval`)."""
    for key, value in StackConfig.load(root).env().items():
        typer.echo(f"export {key}={value}")


@app.command("token")
def token(
    unit: Annotated[str, typer.Option(help="Unit code, e.g. dh-syxx")],
    role: Annotated[list[str], typer.Option(help="Role; repeat for several")],
    sub: Annotated[str, typer.Option(help="User id")] = "demo",
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    days: int = 7,
) -> None:
    """Mint a local HS256 token (demo and tests; refused in production)."""
    from shared.auth import mint_token
    from shared.orgtree import load_org
    from shared.settings import load_settings

    settings = load_settings("cli")
    if load_org(settings.org_file).get(unit) is None:
        typer.secho(f"unknown unit {unit!r}", fg="red", err=True)
        raise typer.Exit(2)
    typer.echo(
        mint_token(settings, sub=sub, unit=unit, roles=role, name=name, ttl_seconds=days * 86400)
    )


@app.command("revoke")
def revoke_tokens(
    by: Annotated[str, typer.Option(help="Who revokes (recorded with the entry)")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the entry)")],
    jti: Annotated[str | None, typer.Option(help="One token, by its id (jti)")] = None,
    sub: Annotated[str | None, typer.Option(help="Every token of this user so far")] = None,
) -> None:
    """Revoke one token or every token of a user issued until now; every service refuses
    them within CITYDESK_JWT_REVOCATION_REFRESH_SECONDS."""
    from shared.mongo import make_client
    from shared.revocation import (
        Subject,
        TokenId,
        ensure_revocation_indexes,
        revocation_collection,
        revoke,
    )
    from shared.settings import load_settings

    target: TokenId | Subject
    if jti is not None and sub is None:
        target = TokenId(jti)
    elif sub is not None and jti is None:
        target = Subject(sub)
    else:
        typer.secho("give --jti or --sub, one of the two", fg="red", err=True)
        raise typer.Exit(2)
    settings = load_settings("cli")

    async def run() -> str:
        client = make_client(settings)
        try:
            collection = revocation_collection(client, settings)
            await ensure_revocation_indexes(collection)
            entry = await revoke(collection, settings, target, by=by, reason=reason)
            return entry["_id"]
        finally:
            await client.close()

    typer.echo(f"revoked {asyncio.run(run())}")


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Folder for the schema files")] = Path("docs/contracts"),
) -> None:
    """Write one JSON Schema per event (for county integrators, with the business rules a
    schema can state), the plain model schemas for the broker's schema registry (one
    ``<topic>.json`` each) and the AsyncAPI document of the whole bus."""
    from shared import topics as tp

    out.mkdir(parents=True, exist_ok=True)
    schemas = event_schemas()
    for name, schema in schemas.items():
        (out / f"{name}.json").write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    registry = out / "registry"
    registry.mkdir(exist_ok=True)
    for topic in tp.ALL:
        schema = topic.model.model_json_schema(mode="serialization")
        (registry / f"{topic.name}.json").write_text(
            json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        )
    asyncapi = asyncapi_document()
    (out / "asyncapi.json").write_text(json.dumps(asyncapi, indent=2, ensure_ascii=False) + "\n")
    CHART_TOPICS.write_text(chart_topics())
    typer.echo(f"wrote {len(schemas)} event schemas and asyncapi.json to {out}")


CHART_TOPICS = Path(__file__).resolve().parent.parent / "deploy/helm/citydesk/files/topics.yaml"


def chart_topics() -> str:
    """Who writes and reads each topic, for the chart's KafkaTopic and KafkaUser ACLs."""
    from shared import topics as tp

    services = sorted({s for t in tp.ALL for s in (*t.writers, *t.readers)} - {tp.COUNTY_SYSTEMS})
    data = {
        "services": services,
        "topics": [
            {
                "name": t.name,
                "writers": list(t.writers),
                "readers": list(t.readers),
                "rebuildReads": t.rebuild_reads,
            }
            for t in tp.ALL
        ],
    }
    header = "# Written by `citydesk contracts export` from shared/topics.py: do not edit.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _seed_intake_rules() -> IntakeRules:
    from services.submission.service import rules as config

    return config.intake_rules(*config.read_seed())


def event_schemas() -> dict[str, dict[str, Any]]:
    """Every event's JSON Schema, keyed by ``<type>.v<version>``, refined with the seeded
    intake rules (what a county's records are checked against)."""
    from shared.contracts import refine
    from shared.events import json_schemas

    schemas = json_schemas()
    rules = _seed_intake_rules()
    for schema in schemas.values():
        refine(schema.get("$defs", {}), rules)
    return schemas


def asyncapi_document() -> dict[str, Any]:
    """One AsyncAPI document for the whole bus: every topic, its writers and its DLQ."""
    from shared.contracts import asyncapi_document as build

    return build(
        title="CityDesk event bus",
        description="Every topic of the CityDesk bus and the contract it carries. Each has a "
        "`<topic>.dlq` sibling holding what could not be applied, with the reason in the "
        "`dlq-reason` header. Every record is signed by its writer (see docs/integrators.md).",
        rules=_seed_intake_rules(),
    )


@bus_app.command("keygen")
def bus_keygen(
    principal: Annotated[str, typer.Argument(help="a service name, or county-<code>")],
    key_file: Annotated[Path, typer.Option(help="where to write the private key (mode 600)")],
) -> None:
    """Make a key pair for one writer on the bus: the private key goes to ``key_file`` (for
    the service's Secret or the county system), the keyring entry is printed (for the
    chart's ``bus.keyring``)."""
    from shared.bus_auth import new_private_key_text

    if key_file.exists():
        typer.secho(f"{key_file} exists; refusing to overwrite a key", fg="red")
        raise typer.Exit(2)
    seed, public = new_private_key_text()
    key_file.write_text(seed + "\n")
    key_file.chmod(0o600)
    typer.echo(yaml.safe_dump({principal: {"public_key": public}}), nl=False)


@dlq_app.command("replay")
def dlq_replay(
    topic: str, limit: Annotated[int | None, typer.Option(help="At most this many")] = None
) -> None:
    """Move the messages of ``<topic>.dlq`` back to ``topic``."""
    from citydesk.dlq import replay_dlq
    from shared.settings import load_settings

    moved = asyncio.run(replay_dlq(load_settings("cli"), topic, limit=limit))
    typer.echo(f"moved {moved} messages from {topic}.dlq back to {topic}")


@dashboards_app.command("render")
def dashboards_render(
    prometheus: Annotated[str, typer.Option(help="Prometheus base URL")] = "http://127.0.0.1:9090",
    out: Annotated[Path, typer.Option(help="Folder for the PNGs")] = Path("docs/dashboards"),
    minutes: Annotated[float, typer.Option(help="Time range, ending now")] = 60.0,
    all_panels: Annotated[bool, typer.Option("--all", help="Every panel, not the key")] = False,
) -> None:
    """Render both dashboards' key panels to PNG from a Prometheus' answers to their queries."""
    from citydesk.dashboards import render_all

    step = max(1.0, minutes)  # about 60 points per line
    for path in render_all(
        prometheus.rstrip("/"), out, minutes=minutes, step=step, all_panels=all_panels
    ):
        typer.echo(f"wrote {path}")


@app.command("serve")
def serve(
    service: str,
    port: int = 8000,
    host: str = "127.0.0.1",
    root: StackDir = Path(".stack"),
) -> None:
    """Run one service (its API and, unless CITYDESK_RUN_CONSUMERS=false, its consumers)
    against the local stack when one is up, else the environment's settings."""
    if service not in SERVICES:
        typer.secho(f"unknown service {service!r}; one of {', '.join(SERVICES)}", fg="red")
        raise typer.Exit(2)
    if (root / "stack.json").exists():
        for key, value in StackConfig.load(root).env().items():
            os.environ.setdefault(key, value)
    import uvicorn

    uvicorn.run(
        f"services.{service}.app:create_app", factory=True, host=host, port=port, log_config=None
    )


@app.command("bench")
def bench(
    service: Annotated[list[str] | None, typer.Option(help="Only these services")] = None,
    out: Annotated[Path, typer.Option(help="Also write the JSON here")] = Path(
        ".bench/results.json"
    ),
    decade_scale: Annotated[
        list[float] | None,
        typer.Option(
            help="Instead: the decade city at these shares of ten years (0.01, 0.1, 1), "
            "every read route timed at each"
        ),
    ] = None,
) -> None:
    """Raw broker, MongoDB and S3 rates, and each service's rate as a ratio to them."""
    if decade_scale:
        from citydesk.bench.decade import run_scales

        run_scales(decade_scale, out.with_name("decade.json"))
        return
    from citydesk.bench.suite import SERVICE_BENCHES, main

    main(tuple(service) if service else SERVICE_BENCHES, out)


@demo_app.command("run")
def demo_run(
    root: StackDir = Path(".stack"),
    console: Annotated[bool, typer.Option(help="Also start the web console.")] = True,
) -> None:
    """Start the stack and every service, simulate a month of work, print the results."""
    from citydesk.demo import run_demo

    try:
        run_demo(root, with_console=console)
    except StackError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc


@demo_app.command("stop")
def demo_stop(root: StackDir = Path(".stack")) -> None:
    """Stop every service and the stack (data stays; `citydesk stack reset` removes it)."""
    from citydesk.demo import stop_demo

    stop_demo(root)
    typer.echo("stopped the services and the stack")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(app())
