"""The ``taskrunner`` console script: the pack commands of ``cli.main`` plus every command group."""

from taskrunner.cli import approvals, db, keys, local, runs, schema, token, verify
from taskrunner.cli.main import app

app.command("run")(local.run)
app.command("serve")(local.serve)
app.add_typer(runs.app, name="runs")
app.command("approve")(approvals.approve)
app.add_typer(approvals.app, name="approvals")
app.command("token")(token.token)
app.add_typer(keys.app, name="keys")
app.command("verify")(verify.verify)
app.add_typer(db.app, name="db")
app.command("schema")(schema.schema)

__all__ = ["app"]
