"""Content credentials (C2PA) on captures: a signed manifest in the PNG that says the picture
was made by a trained algorithm, by which software and model, in which show by which artist,
with Jadong's own assertion holding the capture's sidecar fields; and the check that reads it
back (`python run.py verify FILE`).

The manifest is plain C2PA, so any C2PA reader (c2pa-python's `Reader`, the CAI's tools) reads
the same thing: a `c2pa.actions` assertion with one `c2pa.created` action whose
digitalSourceType is IPTC's `trainedAlgorithmicMedia` and whose softwareAgent is Jadong; the
artist as the author of a schema.org CreativeWork; and `org.jadong.capture`. The embedded
thumbnail is off: the picture is the thumbnail, and the manifest stays near 3 KB.

c2pa (its native library) is imported inside the functions: the control room stays light
until a capture is signed or a file is checked.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installation import __version__

from .credentials import Credentials

SOFTWARE = "Jadong"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ASSERTION = "org.jadong.capture"
CREATED = "c2pa.created"
MIME = {".png": "image/png", ".mp4": "video/mp4", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

# What `verify` says, and the exit status `python run.py verify` gives for it.
INTACT, ALTERED, UNSIGNED, UNTRUSTED, FOREIGN, UNREADABLE = (
    "intact", "altered", "unsigned", "untrusted", "not Jadong's", "unreadable")


class ProvenanceError(RuntimeError):
    """Signing failed; the text says why."""


def manifest_definition(record: dict[str, Any], title: str) -> dict[str, Any]:
    """The C2PA manifest for a capture whose sidecar is `record` (already without the
    visitor's words where the show keeps none: everything here comes from it)."""
    software = {"name": SOFTWARE, "version": __version__}
    created: dict[str, Any] = {
        "action": CREATED,
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "softwareAgent": software,
        "description": f"made by {record.get('generator') or 'a generator'} with the model "
                       f"{record.get('model') or 'none'} in the show {record.get('show') or 'untitled'}",
        "parameters": {k: record[k] for k in ("model", "model_licence", "show", "artist", "seed") if record.get(k)},
    }
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions", "data": {"actions": [created]}},
        {"label": ASSERTION, "data": record},
    ]
    if record.get("artist"):
        assertions.insert(1, {"label": "stds.schema-org.CreativeWork", "data": {
            "@context": "https://schema.org", "@type": "CreativeWork",
            "author": [{"@type": "Person", "name": record["artist"]}]}})
    return {"claim_generator_info": [software], "title": title, "assertions": assertions}


class Signer:
    """Signs captures with one set of credentials. Made once per archive (loading the key and
    the native signer costs more than a signature); used from one thread at a time."""

    def __init__(self, credentials: Credentials) -> None:
        import c2pa

        self.credentials = credentials
        try:
            info = c2pa.C2paSignerInfo(credentials.alg.encode(), credentials.chain, credentials.key, None)
            self._signer = c2pa.Signer.from_info(info)
            no_thumbnail = {"builder": {"thumbnail": {"enabled": False}}}
            self._context = c2pa.Context(settings=c2pa.Settings.from_dict(no_thumbnail))
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"the signing credentials in {credentials.where} were refused: {exc}") from None

    def sign(self, data: bytes, suffix: str, record: dict[str, Any], title: str) -> bytes:
        """`data` (a PNG or MP4 file's bytes) with the capture's manifest embedded."""
        import c2pa

        try:
            builder = c2pa.Builder(manifest_definition(record, title), context=self._context)
            out = io.BytesIO()
            builder.sign(self._signer, MIME[suffix], io.BytesIO(data), out)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"signing {title} failed: {exc}") from None
        return out.getvalue()


@dataclass(frozen=True)
class Verdict:
    """What `verify` found in a file: `state` (INTACT, ALTERED, ...), why, and who made the
    picture and how, as far as its manifest says."""

    state: str
    reason: str = ""
    made: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)  # Jadong's own assertion, when there is one

    @property
    def ok(self) -> bool:
        return self.state == INTACT


def _reader_context(anchors: bytes):
    import c2pa

    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    if anchors:
        settings["trust"] = {"user_anchors": anchors.decode("ascii", "replace")}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def _made(active: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any], bool]:
    """(who made it and how, Jadong's assertion, whether a created action with the trained-
    algorithm source type is there) from the active manifest."""
    made: dict[str, str] = {}
    ours: dict[str, Any] = {}
    created = False
    for assertion in active.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                if action.get("action") != CREATED:
                    continue
                created = created or action.get("digitalSourceType") == DIGITAL_SOURCE_TYPE
                made["digitalSourceType"] = str(action.get("digitalSourceType", ""))
                agent = action.get("softwareAgent") or {}
                made["software"] = (f"{agent.get('name', '')} {agent.get('version', '')}".strip()
                                    if isinstance(agent, dict) else str(agent))
                for key, value in (action.get("parameters") or {}).items():
                    made.setdefault(key, str(value))
        elif label == ASSERTION:
            ours = data
    for key in ("model", "show", "artist"):
        if ours.get(key):
            made[key] = str(ours[key])
    signature = active.get("signature_info") or {}
    made["signed by"] = ", ".join(str(signature[k]) for k in ("common_name", "issuer") if signature.get(k))
    if signature.get("time"):
        made["signed at"] = str(signature["time"])
    return made, ours, created


def _failures(results: dict[str, Any] | None) -> list[str]:
    active = (results or {}).get("activeManifest") or {}
    return [f"{f.get('code')}: {f.get('explanation', '')}" for f in active.get("failure", [])]


def verify(path: Path, anchors: bytes = b"") -> Verdict:
    """Read `path`'s content credentials and check them, trusting the CA certificates in
    `anchors` (PEM). Intact only for a trusted signature over unchanged bytes with Jadong's
    manifest (created by a trained algorithm, Jadong's assertion)."""
    import c2pa

    suffix = path.suffix.lower()
    if suffix not in MIME:
        return Verdict(UNREADABLE, f"{path.name}: expected a .png, .jpg or .mp4 file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Verdict(UNREADABLE, f"cannot read {path}: {exc.strerror or exc}")
    try:
        reader = c2pa.Reader.try_create(MIME[suffix], io.BytesIO(data), context=_reader_context(anchors))
    except c2pa.C2paError as exc:  # a manifest is there but broken: cut, or written over
        return Verdict(ALTERED, f"its content credentials cannot be read: {exc}")
    if reader is None:
        return Verdict(UNSIGNED, "it holds no C2PA manifest: no content credentials")
    with reader:
        state = reader.get_validation_state() or ""
        active = reader.get_active_manifest() or {}
        failures = _failures(reader.get_validation_results())
    made, ours, created = _made(active)
    if state == "Invalid" or any(not f.startswith("signingCredential.untrusted") for f in failures):
        return Verdict(ALTERED, "; ".join(failures) or "the manifest does not match the file", made, ours)
    if state != "Trusted":
        return Verdict(UNTRUSTED, "the signature matches the file, but its certificate is not one this machine "
                       "trusts (pass the CA with --trust CA.pem)", made, ours)
    if not (created and ours and active.get("claim_generator_info", [{}])[0].get("name") == SOFTWARE):
        return Verdict(FOREIGN, "intact content credentials, but not a Jadong capture's", made, ours)
    return Verdict(INTACT, "", made, ours)


def manifest_json(path: Path, anchors: bytes = b"") -> dict[str, Any]:
    """The whole manifest store as a C2PA reader reports it (for tests and `verify --json`)."""
    import c2pa

    with c2pa.Reader(MIME[path.suffix.lower()], io.BytesIO(path.read_bytes()),
                     context=_reader_context(anchors)) as reader:
        return json.loads(reader.json())
