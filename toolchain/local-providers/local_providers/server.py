"""The engine side of a resource provider: gRPC plumbing shared by the
docker and random providers.

A provider is a table of resource kinds keyed by type token. Each kind says
how to check, diff, create, read, update and delete its resources; this
module turns the engine's requests into those calls and their results (or
errors) back into responses.

The providers say ``acceptSecrets: false``: the engine then sends plain
values and marks as secret every output whose input was secret, plus the
outputs an SDK lists in ``additionalSecretOutputs`` (RandomPassword's
``result``). Previews never reach ``create``/``update``
(``supportsPreview: false``); the engine shows the inputs instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from threading import Event
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

UNKNOWN = rpc.UNKNOWN

Props = dict[str, Any]


class ProviderError(Exception):
    """An expected failure; the engine shows the message without a traceback."""


def contains_unknown(value: Any) -> bool:
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknown(v) for v in value)
    return False


def user_keys(props: Mapping[str, Any]) -> set[str]:
    """Property names, without the engine's and SDKs' reserved ``__`` keys."""
    return {k for k in props if not k.startswith("__")}


@dataclass
class DiffResult:
    changed: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    delete_before_replace: bool = False


class ResourceKind:
    """One resource type. Defaults: inputs taken as given, any changed input
    replaces the resource, outputs are the inputs plus what ``create`` adds."""

    token: str = ""
    # Inputs whose change is applied in place; every other change replaces.
    updatable: frozenset[str] = frozenset()
    # Inputs that only affect the engine's bookkeeping, never the resource.
    ignored: frozenset[str] = frozenset()

    def check(self, olds: Props, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        return news, []

    def diff(self, id_: str, olds: Props, news: Props) -> DiffResult:
        result = DiffResult()
        for key in sorted(user_keys(olds) | user_keys(news)):
            if key in self.ignored:
                continue
            new = news.get(key)
            if contains_unknown(new) or _normalise(olds.get(key)) != _normalise(new):
                result.changed.append(key)
                if key not in self.updatable:
                    result.replaces.append(key)
        # A resource whose name the program chose cannot exist twice.
        result.delete_before_replace = bool(result.replaces) and bool(news.get("name"))
        return result

    def create(self, inputs: Props, timeout: float) -> tuple[str, Props]:
        raise NotImplementedError

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props] | None:
        """The resource's current state, or None when it no longer exists."""
        return id_, state

    def update(self, id_: str, olds: Props, news: Props, timeout: float) -> Props:
        return {**olds, **news}

    def delete(self, id_: str, state: Props, timeout: float) -> None:
        return None


def _normalise(value: Any) -> Any:
    """Empty and absent are the same input: SDKs drop Nones, users write []."""
    if value in (None, [], {}, ""):
        return None
    if isinstance(value, Mapping):
        items = {k: _normalise(v) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not None} or None
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _serialize(props: Props) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _props(struct: Any, keep_unknowns: bool = False) -> Props:
    if struct is None:
        return {}
    value = rpc.deserialize_properties(struct, keep_unknowns)
    return dict(value) if value else {}


def _timeout(request: Any, default: float) -> float:
    value = float(getattr(request, "timeout", 0) or 0)
    return value if value > 0 else default


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Provider, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ProviderError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, str(exc))
        except Exception:
            context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())

    return wrapper


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    DEFAULT_TIMEOUT = 600.0

    def __init__(self, name: str, version: str, kinds: list[ResourceKind]) -> None:
        self.name = name
        self.version = version
        self.kinds = {kind.token: kind for kind in kinds}

    def _kind(self, urn: str) -> ResourceKind:
        # urn:pulumi:<stack>::<project>::<parent types$>type::<name>
        token = urn.split("::")[2].split("$")[-1]
        kind = self.kinds.get(token)
        if kind is None:
            raise ProviderError(
                f"{self.name}: resource type {token} is not implemented by this provider; "
                f"it implements {', '.join(sorted(self.kinds))}"
            )
        return kind

    # -- the provider itself ----------------------------------------------

    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return proto.PluginInfo(version=self.version)

    def GetSchema(self, request: Any, context: Any) -> Any:
        schema = {"name": self.name, "version": self.version, "resources": {}}
        return proto.GetSchemaResponse(schema=json.dumps(schema))

    def CheckConfig(self, request: Any, context: Any) -> Any:
        return proto.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> Any:
        return proto.DiffResponse(changes=proto.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> Any:
        return proto.ConfigureResponse(acceptSecrets=False, supportsPreview=False)

    def Cancel(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.name}: no functions")

    # -- resources --------------------------------------------------------

    @_guarded
    def Check(self, request: Any, context: Any) -> Any:
        kind = self._kind(request.urn)
        inputs, failures = kind.check(_props(request.olds, True), _props(request.news, True))
        return proto.CheckResponse(
            inputs=_serialize(inputs),
            failures=[proto.CheckFailure(property=p, reason=r) for p, r in failures],
        )

    @_guarded
    def Diff(self, request: Any, context: Any) -> Any:
        kind = self._kind(request.urn)
        news = _props(request.news, True)
        olds = _props(request.old_inputs)
        if not olds:
            # A state without inputs (an import, an older engine): compare what
            # the program sets with the recorded outputs, key by key, as the
            # upstream bridge compares configuration with state. Computed
            # outputs (a password's result, a volume's mountpoint) are never
            # inputs, so they cannot turn into changes that replace.
            outputs = _props(request.olds)
            olds = {key: outputs[key] for key in user_keys(news) if key in outputs}
        result = kind.diff(request.id, olds, news)
        return proto.DiffResponse(
            changes=proto.DiffResponse.DIFF_SOME if result.changed else proto.DiffResponse.DIFF_NONE,
            diffs=result.changed,
            replaces=result.replaces,
            deleteBeforeReplace=result.delete_before_replace,
        )

    @_guarded
    def Create(self, request: Any, context: Any) -> Any:
        kind = self._kind(request.urn)
        id_, outputs = kind.create(_props(request.properties), _timeout(request, self.DEFAULT_TIMEOUT))
        return proto.CreateResponse(id=id_, properties=_serialize(outputs))

    @_guarded
    def Read(self, request: Any, context: Any) -> Any:
        kind = self._kind(request.urn)
        inputs = _props(request.inputs)
        found = kind.read(request.id, _props(request.properties), inputs)
        if found is None:
            return proto.ReadResponse(id="")
        id_, state = found
        return proto.ReadResponse(id=id_, properties=_serialize(state), inputs=_serialize(inputs))

    @_guarded
    def Update(self, request: Any, context: Any) -> Any:
        kind = self._kind(request.urn)
        outputs = kind.update(
            request.id,
            _props(request.olds),
            _props(request.news),
            _timeout(request, self.DEFAULT_TIMEOUT),
        )
        return proto.UpdateResponse(properties=_serialize(outputs))

    @_guarded
    def Delete(self, request: Any, context: Any) -> Any:
        kind = self._kind(request.urn)
        kind.delete(request.id, _props(request.properties), _timeout(request, self.DEFAULT_TIMEOUT))
        return empty_pb2.Empty()


def serve(provider: Provider) -> None:
    """Serve on a free loopback port and tell the engine which, as plugins do."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    try:
        Event().wait()
    except KeyboardInterrupt:
        server.stop(0)
