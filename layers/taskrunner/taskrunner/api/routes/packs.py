"""The signed pack registry (the packs function): list, show, publish and promote pack versions."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from taskrunner.api.auth import Scope
from taskrunner.api.http import caller, requires
from taskrunner.api.models import (
    DsseEnvelope,
    PackChannelsOut,
    PackList,
    PackOut,
    PackVersionOut,
    PromotePackRequest,
    PublishPackRequest,
    RevocationListOut,
)
from taskrunner.api.problems import REQUEST_PROBLEMS, problem_responses
from taskrunner.canonical import canonical_bytes
from taskrunner.composition import services
from taskrunner.engine import registry
from taskrunner.errors import ValidationFailed

router = Router()


@router.get(
    "/api/packs",
    summary="List the tenant's published packs",
    responses={
        200: {"description": "Packs with their versions, tags and channels"},
        **problem_responses(*REQUEST_PROBLEMS),
    },
    security=requires(Scope.READ),
)
def list_packs(
    name: Annotated[str | None, Query(max_length=48)] = None,
    tag: Annotated[str | None, Query(max_length=128)] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
) -> PackList:
    principal = caller(router, Scope.READ)
    packs = registry.list_packs(services(), principal.tenant_id, name=name, tag=tag, channel=channel)
    return PackList(items=[PackOut.model_validate(p) for p in packs])


@router.get(
    "/api/packs/<packId>/versions",
    summary="A pack's versions and channels",
    responses={200: {"description": "The pack"}, **problem_responses(*REQUEST_PROBLEMS, 404)},
    security=requires(Scope.READ),
)
def list_versions(packId: str) -> PackOut:
    principal = caller(router, Scope.READ)
    return PackOut.model_validate(registry.versions(services(), principal.tenant_id, packId))


@router.get(
    "/api/packs/<packId>/versions/<version>",
    summary="A version's manifest, signature and digests, verified again",
    responses={
        200: {"description": "The verified version"},
        **problem_responses(*REQUEST_PROBLEMS, 404, 409),
    },
    security=requires(Scope.READ),
)
def show_version(packId: str, version: str) -> PackVersionOut:
    principal = caller(router, Scope.READ)
    return PackVersionOut.model_validate(registry.show(services(), principal.tenant_id, packId, version))


@router.post(
    "/api/packs/<packId>/versions",
    summary="Publish a signed pack version",
    responses={
        201: {"description": "The version, verified and published"},
        **problem_responses(*REQUEST_PROBLEMS, 409),
    },
    security=requires(Scope.WRITE),
)
def publish(packId: str, request: Annotated[PublishPackRequest, Body()]) -> Response[PackVersionOut]:
    principal = caller(router, Scope.WRITE)
    svc = services()
    envelope = canonical_bytes(request.envelope) if request.envelope else b""
    bundle, sbom = _decoded(request.bundle, "bundle"), _decoded(request.sbom, "sbom")
    verified = registry.publish(svc, principal.tenant_id, packId, bundle, envelope, sbom)
    shown = PackVersionOut(
        name=verified.name,
        version=verified.version,
        digest=verified.digest,
        publisherKeyIds=list(verified.keyids),
        sbom=verified.sbom_location,
    )
    return Response(201, "application/json", shown)


@router.post(
    "/api/packs/<packId>/promote",
    summary="Point a channel (stable, edge, beta) at a verified version",
    responses={200: {"description": "The pack's channels"}, **problem_responses(*REQUEST_PROBLEMS, 404, 409)},
    security=requires(Scope.WRITE),
)
def promote(packId: str, request: Annotated[PromotePackRequest, Body()]) -> PackChannelsOut:
    principal = caller(router, Scope.WRITE)
    channels = registry.promote(services(), principal.tenant_id, packId, request.version, request.channel)
    return PackChannelsOut(name=packId, channels=channels)


@router.get(
    "/api/packs/revocations",
    summary="The tenant's signed revocation list",
    responses={
        200: {"description": "The list and its envelope"},
        **problem_responses(*REQUEST_PROBLEMS, 404),
    },
    security=requires(Scope.READ),
)
def get_revocations() -> RevocationListOut:
    principal = caller(router, Scope.READ)
    svc = services()
    envelope = registry.revocation_envelope(svc, principal.tenant_id)
    return RevocationListOut(envelope=envelope, **registry.revocations(svc, principal.tenant_id))


@router.put(
    "/api/packs/revocations",
    summary="Replace the tenant's revocation list with a longer one, signed by a trusted publisher key",
    responses={
        200: {"description": "The list now in force"},
        **problem_responses(*REQUEST_PROBLEMS, 409),
    },
    security=requires(Scope.WRITE),
)
def put_revocations(request: Annotated[DsseEnvelope, Body()]) -> RevocationListOut:
    principal = caller(router, Scope.WRITE)
    envelope = request.model_dump()
    document = registry.store_revocations(services(), principal.tenant_id, envelope)
    return RevocationListOut(envelope=envelope, **document)


def _decoded(text: str | None, field: str) -> bytes:
    if not text:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            f"{field} is not base64", remediation=f"send the bytes of the {field} file, base64-encoded"
        ) from None
