"""Content credentials on captures, read back by a real C2PA reader (c2pa-python's Reader):
the manifest says a trained algorithm made the picture, with which software and model, in
which show by which artist; a changed pixel makes `verify` say altered; an unsigned or
untrusted image is no Jadong capture; `credentials` makes a CA and signing certificate that
work; a show's own certificate signs its captures."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import c2pa
import cv2
import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from control.test_capture import VISITOR, VISITOR_OWN, captures_for, frame, sidecar
from installation import __version__
from installation.cli import main as cli
from installation.control import credentials as credentials_module
from installation.control.capture import Trigger
from installation.control.credentials import CredentialFiles, CredentialsError, load_credentials, make_credentials
from installation.control.provenance import (
    ALTERED,
    ASSERTION,
    DIGITAL_SOURCE_TYPE,
    FOREIGN,
    INTACT,
    UNSIGNED,
    UNTRUSTED,
    Signer,
    manifest_json,
    verify,
)


@pytest.fixture
def signed(tmp_path) -> tuple[Path, Path]:
    """A capture signed with Jadong's own credentials (made on first use): (PNG, the CA)."""
    caps = captures_for(tmp_path, capture={"keep_words": True})
    path = caps.take(frame("a lighthouse, woodcut", source="speech", caption=VISITOR_OWN),
                     Trigger("osc", "osc 10.0.0.5:53000"), cue="harbour")
    assert caps.flush()
    return path, tmp_path / "credentials" / "ca.pem"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        out.append((data[i + 4:i + 8], data[i + 8:i + 8 + n]))
        i += 12 + n
    return out


def with_one_pixel_changed(data: bytes) -> bytes:
    """The same PNG, its content credentials untouched, one value of one pixel changed: the
    pixels are decoded, changed, and stored again unfiltered in place of the image data, every
    other chunk (the manifest's caBX among them) kept as it was."""
    chunks = png_chunks(data)
    assert struct.unpack(">IIBB", chunks[0][1][:10])[2:] == (8, 2)  # 8-bit RGB, as captures are written
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    rgb[0, 0, 0] ^= 0x01
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)  # filter type 0 on every row
    out, idat_done = b"\x89PNG\r\n\x1a\n", False
    for kind, body in chunks:
        if kind == b"IDAT":
            if idat_done:
                continue
            body, idat_done = zlib.compress(raw), True
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return out


def active_manifest(path: Path, ca: Path) -> tuple[dict[str, Any], str]:
    """The manifest as any C2PA reader reports it (c2pa-python's Reader, trusting the CA)."""
    settings = c2pa.Settings.from_dict({"verify": {"verify_trust": True},
                                        "trust": {"user_anchors": ca.read_text()}})
    with c2pa.Reader(path, context=c2pa.Context(settings=settings)) as reader:
        store = json.loads(reader.json())
        return store["manifests"][store["active_manifest"]], reader.get_validation_state()


def test_a_captured_png_carries_a_manifest_any_c2pa_reader_reads(signed):
    path, ca = signed
    manifest, state = active_manifest(*signed)
    assert state == "Trusted"
    assert manifest["claim_generator_info"][0]["name"] == "Jadong"
    by_label = {a["label"]: a["data"] for a in manifest["assertions"]}
    (created,) = by_label["c2pa.actions.v2"]["actions"]
    assert created["action"] == "c2pa.created" and created["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert created["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert created["softwareAgent"] == {"name": "Jadong", "version": __version__}
    assert created["parameters"]["model"] == "stabilityai/sd-turbo" and created["parameters"]["show"] == "harbour"
    assert by_label["stds.schema-org.CreativeWork"]["author"] == [{"@type": "Person", "name": "Kim Jadong"}]
    # Jadong's own assertion holds the sidecar's fields (the sidecar adds only whether it was signed).
    ours = by_label[ASSERTION]
    assert {k: v for k, v in sidecar(path).items() if k != "signed"} == ours
    assert ours["prompt"] == "a lighthouse, woodcut" and ours["caption"] == VISITOR_OWN
    assert ours["fired_by"] == "osc 10.0.0.5:53000" and ours["cue"] == "harbour" and ours["artist"] == "Kim Jadong"
    assert manifest_json(path, ca.read_bytes())["active_manifest"]  # the same through Jadong's own reader
    decoded = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decoded, frame().image)  # the manifest does not touch the picture


def test_verify_says_who_made_an_intact_capture_and_how(signed, capsys):
    path, ca = signed
    verdict = verify(path, ca.read_bytes())
    assert verdict.state == INTACT and verdict.ok
    assert cli(["verify", str(path), "--trust", str(ca)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: intact" in out and "trainedAlgorithmicMedia" in out and "a trained algorithm" in out
    for line in (f"software: Jadong {__version__}", "model: stabilityai/sd-turbo", "show: harbour",
                 "artist: Kim Jadong", "signed by: Jadong capture signing, Jadong"):
        assert line in out


def test_a_changed_pixel_makes_verify_say_altered(signed, tmp_path, capsys):
    path, ca = signed
    changed = tmp_path / "changed.png"
    changed.write_bytes(with_one_pixel_changed(path.read_bytes()))
    before, after = cv2.imread(str(path)), cv2.imread(str(changed))
    assert int((before != after).sum()) == 1  # one value of one pixel, nothing else
    assert verify(changed, ca.read_bytes()).state == ALTERED
    assert cli(["verify", str(changed), "--trust", str(ca)]) == 1
    out = capsys.readouterr().out
    assert f"{changed}: altered" in out and "assertion.dataHash.mismatch" in out


def test_a_png_without_credentials_or_re_encoded_is_not_verified(signed, tmp_path, capsys):
    path, ca = signed
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), cv2.imread(str(path)))  # re-encoded: the credentials are gone
    assert cli(["verify", str(plain), "--trust", str(ca)]) == 1
    assert "unsigned (it holds no C2PA manifest" in capsys.readouterr().out
    assert verify(plain, ca.read_bytes()).state == UNSIGNED
    assert cli(["verify", str(tmp_path / "missing.png")]) == 2
    assert "cannot read" in capsys.readouterr().out


def test_a_signature_from_an_untrusted_ca_is_not_intact(signed, tmp_path, monkeypatch, capsys):
    path, _ = signed
    monkeypatch.setattr(credentials_module, "DEFAULT_DIR", tmp_path / "nowhere")
    other = make_credentials(tmp_path / "other")
    assert verify(path, other.ca.read_bytes()).state == UNTRUSTED
    assert cli(["verify", str(path)]) == 1  # no CA to trust at all
    out = capsys.readouterr().out
    assert "untrusted" in out and "--trust CA.pem" in out and "made by: a trained algorithm" in out


def test_credentials_that_are_not_jadongs_are_told_apart(tmp_path):
    files = make_credentials(tmp_path / "cred")
    signer = Signer(load_credentials(files.certificate, files.key))
    png = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))[1].tobytes()
    builder = c2pa.Builder({"claim_generator_info": [{"name": "Other tool", "version": "1"}], "title": "x.png",
                            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                                {"action": "c2pa.created",
                                 "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}]},
                           context=signer._context)
    out = tmp_path / "other.png"
    with open(out, "wb") as dest:
        import io

        builder.sign(signer._signer, "image/png", io.BytesIO(png), dest)
    assert verify(out, files.ca.read_bytes()).state == FOREIGN


def test_the_credentials_command_makes_a_ca_and_a_signing_certificate_that_work(tmp_path, capsys):
    dest = tmp_path / "gallery"
    assert cli(["credentials", str(dest), "--name", "Gallery Seoul"]) == 0
    out = capsys.readouterr().out
    files = CredentialFiles.in_folder(dest)
    assert f'certificate = "{files.certificate}"' in out and f"--trust {files.ca}" in out
    assert oct(os.stat(files.key).st_mode & 0o777) == "0o600" and oct(os.stat(files.ca_key).st_mode & 0o777) == "0o600"
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    leaf, chain_ca = x509.load_pem_x509_certificates(files.certificate.read_bytes())
    assert chain_ca == ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    leaf.verify_directly_issued_by(ca)
    assert b"BEGIN PRIVATE KEY" in files.key.read_bytes()  # PKCS#8
    # A show that names them signs its captures with them, and verify trusts that CA when told to.
    caps = captures_for(tmp_path, provenance={"artist": "Lee", "certificate": str(files.certificate),
                                              "key": str(files.key)})
    path = caps.take(frame(), Trigger("key", "keyboard"))
    assert caps.flush() and sidecar(path)["signed"] is True
    assert not (tmp_path / "credentials").exists()  # Jadong's own were not needed
    verdict = verify(path, files.ca.read_bytes())
    assert verdict.state == INTACT and verdict.made["signed by"] == "Gallery Seoul capture signing, Gallery Seoul"
    assert verdict.made["artist"] == "Lee"
    # Run again into the same folder: refused, the old CA is kept (what it signed must still verify).
    assert cli(["credentials", str(dest)]) == 2
    assert "already exists" in capsys.readouterr().err and verify(path, files.ca.read_bytes()).ok


def test_jadong_makes_its_own_credentials_once_and_says_so(tmp_path):
    events: list = []
    caps = captures_for(tmp_path, events)
    caps.take(frame(), Trigger("key", "keyboard"))
    caps.take(frame(t=2.0), Trigger("key", "keyboard"))
    assert caps.flush()
    (made,) = [f for e, f in events if e == "provenance"]
    assert made["state"] == "credentials made" and made["folder"] == tmp_path / "credentials"
    again: list = []
    later = captures_for(tmp_path, again)  # another show, later: the same credentials, no new CA
    path = later.take(frame(t=3.0), Trigger("key", "keyboard"))
    assert later.flush() and not [e for e, _ in again if e == "provenance"]
    assert verify(path, (tmp_path / "credentials" / "ca.pem").read_bytes()).ok


def test_a_manifest_of_a_show_that_keeps_no_words_holds_none(tmp_path):
    caps = captures_for(tmp_path, capture={"keep_words": False})
    path = caps.take(frame(f"{VISITOR}, woodcut", source="speech", caption=VISITOR_OWN), Trigger("key", "keyboard"))
    assert caps.flush()
    manifest, state = active_manifest(path, tmp_path / "credentials" / "ca.pem")
    text = json.dumps(manifest, ensure_ascii=False)
    assert state == "Trusted" and VISITOR not in text and VISITOR_OWN not in text
    ours = {a["label"]: a["data"] for a in manifest["assertions"]}[ASSERTION]
    assert ours["words_kept"] is False and "caption" not in ours


@pytest.mark.parametrize("problem, files, expected", [
    ("a key that is not the certificate's", "swap", "does not belong to the certificate"),
    ("a chain without its CA", "leaf only", "append its CA certificate"),
    ("a CA first", "ca first", "starts with a CA certificate"),
    ("not PEM", "garbage", "is not a PEM file"),
])
def test_unusable_credentials_are_refused_with_a_sentence(tmp_path, problem, files, expected):
    a, b = make_credentials(tmp_path / "a"), make_credentials(tmp_path / "b")
    cert, key = a.certificate, a.key
    if files == "swap":
        key = b.key
    elif files == "leaf only":
        cert = tmp_path / "leaf.pem"
        cert.write_bytes(a.certificate.read_bytes().split(b"-----END CERTIFICATE-----")[0]
                         + b"-----END CERTIFICATE-----\n")
    elif files == "ca first":
        cert = tmp_path / "ca-first.pem"
        cert.write_bytes(a.ca.read_bytes() + a.certificate.read_bytes())
    else:
        cert = tmp_path / "garbage.pem"
        cert.write_text("hello")
    with pytest.raises(CredentialsError, match=expected):
        load_credentials(cert, key)


def test_a_show_names_both_certificate_and_key_or_neither(tmp_path):
    from installation.show import ShowError, parse_show

    with pytest.raises(ShowError, match="certificate and key go together"):
        parse_show({"provenance": {"certificate": "gallery/signing.pem"}}, tmp_path / "x.toml")
