"""``taskrunner packs``: build, sign and publish pack versions to the signed registry, and manage them."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer

from taskrunner.cli.main import HELP_OPTIONS, JsonOpt, handle_errors, print_json
from taskrunner.cli.remote import TokenOpt, api_call, token_claim
from taskrunner.cli.runs import offline_services
from taskrunner.engine import registry
from taskrunner.errors import TaskRunnerError, ValidationFailed
from taskrunner.evidence.signing import signer_from_uri
from taskrunner.keys import ARTIFACT_NAME
from taskrunner.pack.bundle import MANIFEST_FILE, bundle_digest
from taskrunner.pack.limits import MAX_KEY_FILE_BYTES, MAX_MANIFEST_BYTES, read_at_most

app = typer.Typer(
    help="The signed pack registry: build, sign, publish, promote, revoke and verify pack versions.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
)
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant whose registry to use.")]
DirArg = Annotated[Path, typer.Argument(metavar="DIR", help="Release directory written by 'packs build'.")]
KeyOpt = Annotated[
    str, typer.Option("--key", metavar="URI", help="Publisher key (file:///path or awskms:///alias).")
]
PackArg = Annotated[str, typer.Argument(metavar="PACK", help="Pack name.")]
VersionArg = Annotated[str, typer.Argument(metavar="VERSION", help="Pack version.")]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--api", metavar="URL", help="A deployed TaskRunner API (the token's tenant) instead of local."
    ),
]


def _read(path: Path) -> bytes:
    """The file's bytes, or empty when it is absent (publishing names the missing piece)."""
    return path.read_bytes() if path.is_file() else b""


@app.command()
@handle_errors
def build(
    manifest: Annotated[Path, typer.Argument(metavar="MANIFEST", help="The pack manifest (YAML).")],
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Where to write the release.")],
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", metavar="PATH", help="A file the pack ships (relative to the manifest)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Write DIR/bundle.tar.gz (the manifest as pack.yaml plus the files) and DIR/sbom.cdx.json."""
    contents = {MANIFEST_FILE: read_at_most(manifest, MAX_MANIFEST_BYTES)}
    for file in files or []:
        name = ARTIFACT_NAME.check(file.as_posix(), "--file")
        contents[name] = (manifest.parent / file).read_bytes()
    bundle, sbom = registry.build_pack(contents)
    out.mkdir(parents=True, exist_ok=True)
    (out / registry.BUNDLE).write_bytes(bundle)
    (out / registry.SBOM).write_bytes(sbom)
    _report(json_output, {"bundle": str(out / registry.BUNDLE), "digest": bundle_digest(bundle)})


@app.command()
@handle_errors
def sign(release: DirArg, key: KeyOpt, json_output: JsonOpt = False) -> None:
    """Sign the release's bundle and SBOM digests: DIR/bundle.dsse.json."""
    signer = signer_from_uri(key)
    envelope = registry.sign_bundle(_read(release / registry.BUNDLE), _read(release / registry.SBOM), signer)
    (release / registry.ENVELOPE).write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    _report(json_output, {"envelope": str(release / registry.ENVELOPE), "keyid": signer.keyid})


@app.command()
@handle_errors
def publish(
    release: DirArg,
    tenant: TenantOpt = "local",
    api: RemoteOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Publish the release; refused, with nothing written, unless every piece verifies."""
    bundle, envelope, sbom = (_read(release / n) for n in (registry.BUNDLE, registry.ENVELOPE, registry.SBOM))
    pack = registry.read_pack_name(bundle)
    if api:
        body = {"bundle": _b64(bundle), "envelope": _envelope(envelope), "sbom": _b64(sbom)}
        shown = api_call(api, token, "POST", f"/api/packs/{_quoted(pack)}/versions", body)
        _report(json_output, {"published": f"{shown['name']}@{shown['version']}", "digest": shown["digest"]})
        return
    verified = registry.publish(offline_services(), tenant, pack, bundle, envelope, sbom)
    _report(json_output, {"published": f"{verified.name}@{verified.version}", "digest": verified.digest})


@app.command("list")
@handle_errors
def list_packs(
    tenant: TenantOpt = "local",
    name: Annotated[str | None, typer.Option(help="Only this pack.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only packs with this tag.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only packs with a version on this channel.")] = None,
    api: RemoteOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The tenant's published packs, their versions, tags and channels."""
    if api:
        query = urllib.parse.urlencode(
            {k: v for k, v in (("name", name), ("tag", tag), ("channel", channel)) if v}
        )
        packs = api_call(api, token, "GET", "/api/packs" + (f"?{query}" if query else ""))["items"]
    else:
        packs = registry.list_packs(offline_services(), tenant, name=name, tag=tag, channel=channel)
    if json_output:
        print_json(packs)
        return
    for pack in packs:
        channels = ", ".join(f"{c}={v}" for c, v in sorted(pack["channels"].items())) or "-"
        typer.echo(f"{pack['name']}\t{', '.join(pack['versions'])}\tchannels: {channels}")


@app.command()
@handle_errors
def show(
    pack: PackArg,
    version: VersionArg,
    tenant: TenantOpt = "local",
    api: RemoteOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """A version's digest, publisher keys, SBOM and manifest (verified again first)."""
    if api:
        path = f"/api/packs/{_quoted(pack)}/versions/{_quoted(version)}"
        _report(json_output, api_call(api, token, "GET", path))
        return
    _report(json_output, registry.show(offline_services(), tenant, pack, version))


@app.command()
@handle_errors
def promote(
    pack: PackArg,
    version: VersionArg,
    channel: Annotated[str, typer.Option("--channel", help="stable, edge or beta.")],
    tenant: TenantOpt = "local",
    api: RemoteOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Point a channel at a verified version (packRef name@channel then runs it)."""
    if api:
        body = {"version": version, "channel": channel}
        channels = api_call(api, token, "POST", f"/api/packs/{_quoted(pack)}/promote", body)["channels"]
    else:
        channels = registry.promote(offline_services(), tenant, pack, version, channel)
    _report(json_output, {"channels": channels})


@app.command()
@handle_errors
def revoke(
    key: KeyOpt,
    ref: Annotated[
        str | None, typer.Argument(metavar="[PACK@VERSION]", help="The version to revoke.")
    ] = None,
    publisher_key: Annotated[
        str | None, typer.Option("--publisher-key", metavar="KEYID", help="Revoke a publisher key instead.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (shown when a submit is refused).")] = "",
    init: Annotated[bool, typer.Option("--init", help="Create the empty, signed revocation list.")] = False,
    tenant: TenantOpt = "local",
    api: RemoteOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Add a version or a publisher key to the tenant's signed revocation list (or create it with --init)."""
    if not (ref or publisher_key or init):
        raise ValidationFailed(
            "nothing to revoke", remediation="name PACK@VERSION, --publisher-key or --init"
        )
    pack, at, version = (ref or "").rpartition("@")
    if ref and not (at and pack and version):
        raise ValidationFailed(f"{ref[:80]!r} is not PACK@VERSION", remediation="e.g. hello@1.0.0")
    signer = signer_from_uri(key)
    if api:  # the deployed list, extended and signed here, replaced there (the API refuses one that shrinks)
        current = _remote_revocations(api, token, init)
        tenant = str((current or {}).get("tenant") or token_claim(token, "tenant_id") or "")
        document = registry.extend_revocations(
            current, tenant, pack=pack or None, version=version or None, keyid=publisher_key, reason=reason
        )
        answer = api_call(
            api, token, "PUT", "/api/packs/revocations", registry.sign_revocations(document, signer)
        )
        _report(json_output, {k: v for k, v in answer.items() if k != "envelope"})
        return
    document = registry.revoke(
        offline_services(),
        tenant,
        signer,
        pack=pack or None,
        version=version or None,
        keyid=publisher_key,
        reason=reason,
    )
    _report(json_output, document)


def _remote_revocations(api: str, token: str | None, init: bool) -> dict[str, Any] | None:
    """The deployed tenant's revocation list (none yet: ``None`` when creating it with --init)."""
    try:
        current: dict[str, Any] = api_call(api, token, "GET", "/api/packs/revocations")
    except TaskRunnerError as error:
        if init and error.code == "NotFound":
            return None
        raise
    return current


@app.command()
@handle_errors
def verify(
    ref: Annotated[str, typer.Argument(metavar="PACK@VERSION|PACK@CHANNEL", help="The version to check.")],
    tenant: TenantOpt = "local",
    json_output: JsonOpt = False,
) -> None:
    """Check a published version as a submit would: signature, digests, SBOM, revocation list."""
    verified = registry.resolve(offline_services(), tenant, ref)
    _report(
        json_output,
        {
            "verified": f"{verified.name}@{verified.version}",
            "digest": verified.digest,
            "publisherKeyIds": list(verified.keyids),
            "sbom": verified.sbom_location,
        },
    )


@app.command("trust-publisher")
@handle_errors
def trust_publisher(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Publisher name.")],
    public_key: Annotated[Path, typer.Argument(metavar="KEY.pub.pem", help="The publisher's public key.")],
    tenant: TenantOpt = "local",
    json_output: JsonOpt = False,
) -> None:
    """Trust a publisher's public key for the tenant."""
    pem = read_at_most(public_key, MAX_KEY_FILE_BYTES).decode("ascii", "replace")
    keyid = registry.trust_publisher(offline_services(), tenant, name, pem)
    _report(json_output, {"publisher": name, "keyid": keyid})


def _report(json_output: bool, document: dict[str, Any]) -> None:
    if json_output:
        print_json(document)
        return
    for field, value in document.items():
        typer.echo(f"{field}: {value}")


def _quoted(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _b64(data: bytes) -> str | None:
    return base64.b64encode(data).decode("ascii") if data else None


def _envelope(data: bytes) -> dict[str, Any] | None:
    """The release's signature envelope as JSON (absent: the API names what is missing)."""
    if not data:
        return None
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ValidationFailed(
            f"{registry.ENVELOPE} is not a JSON object",
            remediation="sign the release again with 'packs sign'",
        )
    return document
