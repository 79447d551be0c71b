"""``taskrunner approve`` and ``taskrunner approvals``: decide gates locally, remotely or offline."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from taskrunner.cli.main import HELP_OPTIONS, JsonOpt, handle_errors, print_json, read_json_object, writable
from taskrunner.cli.main import stdout as console
from taskrunner.cli.remote import ApiOpt, TokenOpt, api_call, api_request, token_claim
from taskrunner.engine.approvals import DecisionWord
from taskrunner.errors import ValidationFailed

app = typer.Typer(
    help="Offline approvals: export a request, sign it elsewhere, import the response.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
)
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="Run id.")]
GateArg = Annotated[str, typer.Argument(metavar="GATE", help="Gate id (the gate step id).")]
RejectOpt = Annotated[bool, typer.Option("--reject", help="Reject instead of approve.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why; recorded in the signed ledger.")]
ApproverOpt = Annotated[str, typer.Option("--as", help="Approver name (its local key signs).")]
REQUEST_KIND = "stellaops.io/approval-request.v1"
RESPONSE_KIND = "stellaops.io/approval-response.v1"
_REQUEST_FIELDS = {"kind": str, "runId": str, "gateId": str, "tenantId": str, "planHash": str}
_RESPONSE_FIELDS = {**_REQUEST_FIELDS, "approver": str, "decision": str, "envelope": dict}


@handle_errors
def approve(
    run_id: RunArg,
    gate_id: GateArg,
    reject: RejectOpt = False,
    reason: ReasonOpt = None,
    approver: ApproverOpt = "local-approver",
    api: Annotated[str | None, typer.Option(help="Decide through this TaskRunner API instead.")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TASKRUNNER_TOKEN",
            help="Identity token for --api (packs.approve and the approval's grants); exchanged for an "
            "approval token.",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Approve (or reject) GATE of RUN as APPROVER, signing the decision with the approver's key."""
    decision: DecisionWord = "reject" if reject else "approve"
    if api:
        _print_gate(_approve_remote(api, token, run_id, gate_id, decision, reason, approver), json_output)
        return
    from taskrunner.local.approvers import approve_locally
    from taskrunner.local.decisions import local_decisions

    with local_decisions() as local:
        run = local.svc.store.get_run(run_id, None)
        _print_gate(
            approve_locally(
                local.svc,
                local.home,
                tenant_id=run.tenantId,
                run_id=run_id,
                gate_id=gate_id,
                approver=approver,
                decision=decision,
                reason=reason,
            ),
            json_output,
        )


def _print_gate(view: Any, json_output: bool) -> None:
    """A decided gate: its JSON view with ``--json``, else one line."""
    if json_output:
        print_json(view)
        return
    console.print(
        f"gate {view['gateId']} of run {view['runId']}: {view['decision']} recorded; "
        f"{view['approvals']}/{view['requiredCount']} approvals, {view['status']}",
        markup=False,
    )


def _approve_remote(
    api: str,
    token: str | None,
    run_id: str,
    gate_id: str,
    decision: DecisionWord,
    reason: str | None,
    approver: str,
) -> Any:
    from taskrunner.keyfiles import taskrunner_home
    from taskrunner.local.approvers import approver_signer, signed_envelope

    if not token:
        raise ValidationFailed("--api needs a token", remediation="pass --token or set TASKRUNNER_TOKEN")
    base = api.rstrip("/")
    signer = approver_signer(taskrunner_home(), approver)
    quoted = "/".join(urllib.parse.quote(part, safe="") for part in (run_id, "gates", gate_id))
    exchanged = api_request("POST", f"{base}/api/runs/{quoted}/approval-token", token, {})
    envelope = signed_envelope(
        signer,
        run_id=run_id,
        gate_id=gate_id,
        plan_hash=exchanged["planHash"],
        tenant_id=exchanged["tenantId"],
        decision=decision,
        reason=reason,
        approver=approver,
    )
    body = {
        "gateId": gate_id,
        "decision": decision,
        "reason": reason,
        "planHash": exchanged["planHash"],
        "envelope": envelope,
    }
    run_path = urllib.parse.quote(run_id, safe="")
    return api_request("POST", f"{base}/api/runs/{run_path}/approve", exchanged["token"], body)


@app.command("export")
@handle_errors
def export_request(
    run_id: RunArg,
    gate_id: GateArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Request file to write.")],
    json_output: JsonOpt = False,
) -> None:
    """Everything an offline approver needs to decide GATE (never the task token)."""
    from taskrunner.cli.runs import offline_services
    from taskrunner.engine.queries import jsonable

    writable(output)
    svc = offline_services()
    run = svc.store.get_run(run_id, None)
    gate = svc.store.get_gate(run_id, gate_id)
    request = {
        "kind": REQUEST_KIND,
        "runId": run_id,
        "gateId": gate_id,
        "tenantId": run.tenantId,
        "planHash": run.planHash,
        "pack": run.plan["pack"],
        "inputs": run.plan.get("inputs", {}),
        **{
            k: v
            for k, v in jsonable(gate.public()).items()
            if k in ("approvalId", "status", "requiredCount", "grants", "reason", "message", "expiresAt")
        },
    }
    output.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _print_written(output, request, json_output)


@app.command("sign")
@handle_errors
def sign_request(
    request_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="REQUEST")],
    key: Annotated[Path, typer.Option("--key", exists=True, dir_okay=False, help="Approver's Ed25519 key.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Response file to write.")],
    approver: Annotated[
        str | None, typer.Option("--as", help="Approver name (default: key file name).")
    ] = None,
    reject: RejectOpt = False,
    reason: ReasonOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Sign a decision on an exported request (works on a disconnected machine)."""
    from taskrunner.evidence.signing import file_signer
    from taskrunner.keys import APPROVER
    from taskrunner.local.approvers import signed_envelope

    writable(output)
    request = read_json_object(request_file, "approval request", _REQUEST_FIELDS)
    if request["kind"] != REQUEST_KIND:
        raise ValidationFailed(
            f"{request_file} is not an approval request", remediation="use 'approvals export'"
        )
    name = APPROVER.check(approver or key.stem, "--as")
    decision: DecisionWord = "reject" if reject else "approve"
    envelope = signed_envelope(
        file_signer(key),
        run_id=request["runId"],
        gate_id=request["gateId"],
        plan_hash=request["planHash"],
        tenant_id=request["tenantId"],
        decision=decision,
        reason=reason,
        approver=name,
    )
    response = {
        "kind": RESPONSE_KIND,
        "runId": request["runId"],
        "gateId": request["gateId"],
        "tenantId": request["tenantId"],
        "planHash": request["planHash"],
        "approver": name,
        "decision": decision,
        "reason": reason,
        "envelope": envelope,
    }
    output.write_text(json.dumps(response, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _print_written(output, response, json_output)


def _print_written(output: Path, document: dict[str, Any], json_output: bool) -> None:
    """The file written: its path, or with ``--json`` the path and what it holds for which gate."""
    if json_output:
        print_json({"path": str(output), **{k: document[k] for k in ("kind", "runId", "gateId")}})
        return
    sys.stdout.write(f"{output}\n")


@app.command("import")
@handle_errors
def import_response(
    response_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="RESPONSE")],
    json_output: JsonOpt = False,
) -> None:
    """Apply a signed offline decision, with the same checks as the API."""
    from taskrunner.local.approvers import decide_signed
    from taskrunner.local.decisions import local_decisions

    response = read_json_object(response_file, "approval response", {"kind": str})
    if response["kind"] != RESPONSE_KIND:
        raise ValidationFailed(
            f"{response_file} is not an approval response", remediation="use 'approvals sign'"
        )
    read_json_object(response_file, "approval response", _RESPONSE_FIELDS)  # every field, typed
    with local_decisions() as local:
        run = local.svc.store.get_run(response["runId"], response["tenantId"])
        _print_gate(
            decide_signed(
                local.svc,
                run,
                gate_id=response["gateId"],
                approver=response["approver"],
                decision=response["decision"],
                reason=response.get("reason"),
                plan_hash=response["planHash"],
                envelope=response["envelope"],
            ),
            json_output,
        )


@app.command("trust")
@handle_errors
def trust(
    approver: Annotated[str, typer.Argument(metavar="APPROVER")],
    public_key: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="PUBKEY")],
    tenant: Annotated[str, typer.Option(help="Tenant the approver decides for.")] = "local",
    json_output: JsonOpt = False,
) -> None:
    """Trust APPROVER's public key (PEM) for decisions in TENANT."""
    from taskrunner.cli.runs import offline_services
    from taskrunner.cli.verify import read_trusted_key
    from taskrunner.keys import trust_key

    key = trust_key(tenant, approver)  # validates both names
    pem = read_trusted_key(public_key)  # refuse anything that is not a usable public key
    offline_services().artifacts.put_bytes(key, pem, "application/x-pem-file")
    if json_output:
        print_json({"approver": approver, "tenant": tenant, "trusted": True})
        return
    sys.stdout.write(f"trusted {approver} for tenant {tenant}\n")


def _print_key(record: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(record)
        return
    console.print(
        f"key {record['keyId']} of {record['approver']} ({record['label']}): {record['status']}", markup=False
    )


def _token_subject(token: str) -> str:
    """The ``sub`` claim of a JWT, read without verification (the server checks the token)."""
    from taskrunner.keys import APPROVER

    return APPROVER.check(token_claim(token, "sub"), "the token's 'sub' claim")


@app.command("enrol")
@handle_errors
def enrol(
    api: ApiOpt,
    token: TokenOpt = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            dir_okay=False,
            help="ECDSA P-256 key to enrol (created if missing; "
            "default $TASKRUNNER_HOME/keys/approvers/<sub>.p256.pem).",
        ),
    ] = None,
    label: Annotated[
        str, typer.Option("--label", help="What holds the key (1-64 characters).")
    ] = "taskrunner CLI",
    json_output: JsonOpt = False,
) -> None:
    """Enrol this machine's approver key with the API; 'approve --api' then signs with it."""
    from taskrunner.engine.approver_keys import check_label
    from taskrunner.evidence.signing import ensure_p256_keyfile
    from taskrunner.keyfiles import taskrunner_home
    from taskrunner.local.approvers import enrolled_key_path

    check_label(label)
    if not token:
        raise ValidationFailed("--api needs a token", remediation="pass --token or set TASKRUNNER_TOKEN")
    signer = ensure_p256_keyfile(key or enrolled_key_path(taskrunner_home(), _token_subject(token)))
    body = {"publicKeyPem": signer.public_key_pem, "label": label}
    _print_key(api_call(api, token, "POST", "/api/approvers/keys", body), json_output)


@app.command("keys")
@handle_errors
def list_keys(api: ApiOpt, token: TokenOpt = None, json_output: JsonOpt = False) -> None:
    """List the approver keys the token's subject enrolled."""
    listing = api_call(api, token, "GET", "/api/approvers/keys")
    if json_output:
        print_json(listing)
        return
    for record in listing["items"]:
        _print_key(record, False)


@app.command("confirm")
@handle_errors
def confirm_key(
    approver: Annotated[str, typer.Argument(metavar="APPROVER")],
    key_id: Annotated[str, typer.Argument(metavar="KEYID")],
    api: ApiOpt,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Confirm APPROVER's pending key KEYID (an administrator's token, packs.admin)."""
    from taskrunner.engine.approver_keys import check_key_id
    from taskrunner.keys import APPROVER

    path = f"/api/approvers/{APPROVER.check(approver, 'APPROVER')}/keys/{check_key_id(key_id)}/confirm"
    _print_key(api_call(api, token, "POST", path, {}), json_output)


@app.command("revoke-key")
@handle_errors
def revoke_key(
    key_id: Annotated[str, typer.Argument(metavar="KEYID")],
    api: ApiOpt,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Revoke one of your enrolled keys: decisions it signs from now on are refused."""
    from taskrunner.engine.approver_keys import check_key_id

    _print_key(api_call(api, token, "DELETE", f"/api/approvers/keys/{check_key_id(key_id)}"), json_output)


@app.command("policy")
@handle_errors
def policy(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the policy applies to.")],
    enrolment: Annotated[
        str,
        typer.Option(
            "--enrolment", help="self (active at once), confirm (an administrator confirms) or closed."
        ),
    ],
    confirmer_scope: Annotated[
        str, typer.Option("--confirmer-scope", help="Scope an administrator needs to confirm keys.")
    ] = "packs.admin",
    require_scope: Annotated[
        list[str] | None,
        typer.Option(
            "--require-scope", help="Scope an approver needs to enrol, beyond packs.approve (repeatable)."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Set TENANT's approver key enrolment policy (in the artifact store the API reads)."""
    from pydantic import ValidationError

    from taskrunner.cli.runs import offline_services
    from taskrunner.engine.approver_keys import EnrolmentPolicy, write_policy
    from taskrunner.keys import TENANT_ID

    TENANT_ID.check(tenant, "--tenant")
    try:
        document = EnrolmentPolicy.model_validate(
            {"enrolment": enrolment, "confirmerScope": confirmer_scope, "requireScopes": require_scope or []}
        )
    except ValidationError as exc:
        raise ValidationFailed(
            f"invalid enrolment policy: {exc.errors()[0]['msg']}",
            remediation="--enrolment is self, confirm or closed; scopes are non-empty names",
        ) from None
    write_policy(offline_services(), tenant, document)
    if json_output:
        print_json({"tenant": tenant, **document.model_dump(mode="json")})
        return
    sys.stdout.write(f"tenant {tenant}: approver key enrolment {document.enrolment}\n")
