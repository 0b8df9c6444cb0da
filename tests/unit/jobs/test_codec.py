"""The job record's codec: every stage output round-trips; records written before the typed model read the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.routes.mints import status_view
from jobs.codec import decode_job, decode_output, encode_error, encode_output, new_record_fields
from jobs.model import (
    PROGRESS,
    TERMINAL,
    Job,
    JobError,
    JobStatus,
    MintStage,
    Payer,
    PinStage,
    RenderStage,
    Stage,
    StageOutput,
    stage_of,
)
from personalization.orchestrator import Orchestration
from personalization.profile import WalletProfile
from personalization.style import StyleParams
from webhooks.payloads import status_payload

# Written by the code before the typed model (git 56f7345): each record's hash exactly as
# JobStore wrote it (field order included), its status answer and its webhook body, byte for byte.
TODAY = json.loads((Path(__file__).parent / "today_records.json").read_text())

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
naturals = st.integers(min_value=0, max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | ints | floats | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(text, json_values, max_size=4)
pairs = st.lists(st.tuples(text, naturals), max_size=3).map(tuple)
optional_block = st.none() | naturals

profiles = st.builds(
    WalletProfile,
    chain_id=naturals,
    address=text,
    block_number=naturals,
    balance_eth=floats,
    tx_count=naturals,
    is_contract=st.booleans(),
    erc20_transfers=naturals,
    erc721_transfers=naturals,
    erc1155_transfers=naturals,
    transfers_in=naturals,
    transfers_out=naturals,
    interactions=naturals,
    distinct_contracts=naturals,
    distinct_counterparties=naturals,
    nfts_held=naturals,
    contracts_deployed=naturals,
    first_active_block=optional_block,
    last_active_block=optional_block,
    active_blocks=naturals,
    labels=st.dictionaries(text, naturals, max_size=3),
    top_contracts=pairs,
    context=json_objects,
    items_held=naturals,
    first_activity_block=optional_block,
    recent_events=naturals,
    flows=st.dictionaries(text, naturals, max_size=3),
    top_collections=pairs,
    top_tokens=pairs,
)
style_params = st.builds(
    StyleParams,
    palette=text,
    medium=text,
    motif=text,
    mood=text,
    complexity=ints,
    energy=ints,
    symmetry=ints,
    grain=ints,
    hue_shift=ints,
)
orchestrations = st.builds(Orchestration, params=style_params, orchestrator=text, persona=text, provenance=json_objects)
renders = st.builds(
    RenderStage,
    image_cid=text,
    renderer=text,
    renderer_version=text,
    seed=naturals,
    attempts=naturals,
    width=naturals,
    height=naturals,
    file_sha256=text,
    pixel_sha256=text,
    synth_seconds=floats,
    encode_seconds=floats,
    diffusion=st.none() | json_objects,
)
pins = st.builds(PinStage, image_cid=text, metadata_cid=text, token_uri=text, image_uri=text)
mints = st.builds(
    MintStage,
    token_id=naturals,
    tx_hash=text,
    block_number=naturals,
    gas_used=st.none() | naturals,
    batch_size=naturals,
    contract=text,
    chain_id=naturals,
    already_minted=st.booleans(),
)


@given(st.one_of(profiles, orchestrations, renders, pins, mints))
def test_every_stage_output_round_trips(output: StageOutput) -> None:
    encoded = encode_output(output)
    assert decode_output(stage_of(output), encoded) == output
    # Sorted keys, as the documents were always written.
    document = msgspec.json.decode(encoded)
    assert list(document) == sorted(document)


@given(profiles)
def test_a_profile_is_saved_as_personalizations_own_dict(profile: WalletProfile) -> None:
    # The library owns the profile's dict form; the stage document is that form, nothing else.
    assert msgspec.json.decode(encode_output(profile)) == json.loads(json.dumps(profile.to_dict()))


@given(orchestrations)
def test_a_style_is_saved_as_params_orchestrator_persona_provenance(orchestration: Orchestration) -> None:
    assert msgspec.json.decode(encode_output(orchestration)) == json.loads(
        json.dumps(
            {
                "params": orchestration.params.to_dict(),
                "orchestrator": orchestration.orchestrator,
                "persona": orchestration.persona,
                "provenance": orchestration.provenance,
                "words": None,  # an orchestration without words (as every one before them)
            }
        )
    )


def test_render_without_diffusion_has_no_diffusion_field() -> None:
    render = RenderStage(
        image_cid="c",
        renderer="procedural",
        renderer_version="3",
        seed=1,
        attempts=1,
        width=8,
        height=8,
        file_sha256="f",
        pixel_sha256="p",
        synth_seconds=0.5,
        encode_seconds=0.25,
    )
    assert "diffusion" not in msgspec.json.decode(encode_output(render))


@given(st.text(), st.text())
def test_errors_round_trip(code: str, message: str) -> None:
    error = JobError(code, message)
    assert msgspec.json.decode(encode_error(error), type=JobError) == error


def _raw(record: dict[str, Any]) -> dict[bytes, bytes]:
    return {name.encode(): value.encode() for name, value in record["hash"].items()}


@pytest.mark.parametrize("name", sorted(TODAY))
def test_a_record_in_todays_format_reads_back(name: str) -> None:
    record = TODAY[name]
    job = decode_job(record["id"], _raw(record))
    assert job.status == name
    assert isinstance(job.status, JobStatus)
    # What the status API answers and what a webhook receiver gets are byte for byte as before.
    assert msgspec.json.encode(status_view(job, "http://127.0.0.1:8000")).decode() == record["status_json"]
    payload = status_payload(job, "evt_1", f"mint.{job.status}", 1700000009.25)
    assert json.dumps(payload, sort_keys=True, separators=(",", ":")) == record["webhook_json"]


def test_a_confirmed_record_in_todays_format_has_every_stage_typed() -> None:
    record = TODAY["confirmed"]
    job = decode_job(record["id"], _raw(record))
    assert isinstance(job.profile, WalletProfile)
    assert job.profile.top_contracts[0] == ("0x5fbdb2315678afecb367f032d93f642f64180aa3", 9)
    assert isinstance(job.style, Orchestration)
    assert job.style.params.hue_shift == 40
    assert job.render is not None
    assert job.render.diffusion == {
        "guidance": 7.5,
        "model_id": "tiny",
        "steps": 4,
        "versions": {"torch": "2.5"},
    }
    assert job.pin is not None
    assert job.pin.token_uri == "ipfs://bafkreimeta"
    assert job.mint is not None
    assert job.mint.token_id == 7
    assert list(job.timings) == [Stage.PROFILE, Stage.STYLE, Stage.RENDER, Stage.PIN, Stage.MINT]
    # Saved again in the new encoding, each stage reads back the same.
    for output in (job.profile, job.style, job.render, job.pin, job.mint):
        assert decode_output(stage_of(output), encode_output(output)) == output
    assert job.error is None
    assert job.detail is None


def test_a_failed_record_keeps_its_error_and_a_queued_one_derives_its_seed() -> None:
    failed = decode_job("jobfailed", _raw(TODAY["failed"]))
    assert failed.error == JobError("render_failed", "rendered image too flat")
    assert failed.attempts == 3
    queued = decode_job("jobqueued", _raw(TODAY["queued"]))
    assert queued.seed == 17501806690724551992  # derive_seed, as the records have always read it
    assert queued.profile is None
    assert queued.timings == {}


def test_a_record_without_error_fields_reads_them_as_before() -> None:
    raw = _raw(TODAY["queued"]) | {b"status": b"failed", b"error": b"{}"}
    assert decode_job("j", raw).error == JobError("internal_error", "")


def test_new_records_have_todays_fields() -> None:
    fields = new_record_fields(
        tenant="t", recipient="0xAb", collection="default", context={"b": 1, "a": 2}, request_id="0x01", created_at=1.5
    )
    assert json.loads(json.dumps(fields)) == [
        "status", "queued",
        "tenant", "t",
        "recipient", "0xAb",
        "collection", "default",
        "context", '{"a": 2, "b": 1}',
        "request_id", "0x01",
        "created_at", "1.5",
        "attempts", "0",
    ]  # fmt: skip


def test_statuses_and_stages_keep_their_strings_and_order() -> None:
    assert [str(status) for status in JobStatus] == [
        "queued", "profiling", "styling", "rendering", "pinning", "minting", "voucher_ready", "confirmed", "failed",
        "expired",
    ]  # fmt: skip
    assert {"confirmed", "failed", "expired"} == TERMINAL
    assert [status for status in JobStatus if status.ended] == [
        JobStatus.CONFIRMED,
        JobStatus.FAILED,
        JobStatus.EXPIRED,
    ]
    assert PROGRESS == ("queued", "profiling", "styling", "rendering", "pinning", "minting", "confirmed")
    assert [str(stage) for stage in Stage] == ["profile", "style", "render", "pin", "voucher", "mint"]
    assert [stage.status for stage in Stage] == ["profiling", "styling", "rendering", "pinning", "minting", "minting"]


def test_a_collector_paid_record_says_so_and_every_other_reads_as_service_paid() -> None:
    fields = new_record_fields(
        tenant="t", recipient="0x" + "11" * 20, collection="default", context={}, request_id="0x" + "22" * 32,
        created_at=1.0, payer=Payer.COLLECTOR,
    )  # fmt: skip
    raw = {str(k).encode(): str(v).encode() for k, v in zip(fields[::2], fields[1::2], strict=True)}
    raw[b"edition"] = b"0"
    assert decode_job("j", raw).payer is Payer.COLLECTOR
    del raw[b"payer"]
    assert decode_job("j", raw).payer is Payer.SERVICE
    assert decode_job("jobqueued", _raw(TODAY["queued"])).payer is Payer.SERVICE


def test_recording_a_stage_sets_its_field_and_timing() -> None:
    job = decode_job("jobqueued", _raw(TODAY["queued"]))
    pin = PinStage(image_cid="i", metadata_cid="m", token_uri="ipfs://m", image_uri="ipfs://i")
    job.record(pin, 0.5)
    assert job.pin is pin
    assert job.timings == {Stage.PIN: 0.5}
    assert isinstance(job, Job)
