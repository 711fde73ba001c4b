"""SARIF 2.1.0 output: rules, locations, fingerprints and the chain as a code flow."""

from __future__ import annotations

import json

from gfpcheck.checks import CHECKS

from .test_cli import SEED, gfpcheck


def sarif(*args: str) -> dict:
    run = gfpcheck("scan", "--format", "sarif", *args)
    assert run.returncode == 1, run.stderr
    return json.loads(run.stdout)


def test_driver_declares_every_rule_with_descriptions_and_help():
    log = sarif(str(SEED))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "gfpcheck" and driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == [c.id for c in CHECKS]
    for rule, check in zip(driver["rules"], CHECKS, strict=True):
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] == check.full
        assert check.help in rule["help"]["text"] and check.help in rule["help"]["markdown"]
        assert rule["defaultConfiguration"]["level"] == check.severity
        assert rule["properties"]["tags"]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == SEED.resolve().as_uri() + "/"


def test_results_carry_location_fingerprint_and_chain():
    run = sarif(str(SEED))["runs"][0]
    result = next(r for r in run["results"] if r["properties"]["function"] == "btrfs_initxattrs")
    assert result["ruleId"] == "nofs-recursion" and result["level"] == "error"
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "nofs-recursion"
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "fs/btrfs/xattr.c", "uriBaseId": "SRCROOT"}
    assert physical["region"] == {"startLine": 29, "startColumn": 10, "endLine": 29, "endColumn": 17}
    (fingerprint,) = result["partialFingerprints"].values()
    assert len(fingerprint) == 32
    steps = result["codeFlows"][0]["threadFlows"][0]["locations"]
    texts = [s["location"]["message"]["text"] for s in steps]
    assert "takes a transaction handle" in texts[0]
    assert texts[-2] == "security_inode_init_security: calls 'initxattrs', bound to btrfs_initxattrs by that caller"
    assert "relatedLocations" not in result  # reported at its allocation: it covers nothing else
    assert all(s["location"]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "SRCROOT" for s in steps)


def test_fingerprints_survive_line_shifts(tmp_path):
    import shutil

    tree = tmp_path / "seed"
    shutil.copytree(SEED, tree)
    before = sarif("--no-cache", str(tree))["runs"][0]["results"]
    xattr = tree / "fs/btrfs/xattr.c"  # both reported places: an allocation, and a fix site
    xattr.write_text("/* moved down */\n\n\n" + xattr.read_text())
    after = sarif("--no-cache", str(tree))["runs"][0]["results"]

    def prints(results):
        return sorted(r["partialFingerprints"]["gfpcheck/v2"] for r in results)

    assert prints(before) == prints(after)
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in before] != [
        r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in after]


def test_sarif_bytes_are_deterministic(tmp_path):
    cold = gfpcheck("scan", "--format", "sarif", "--cache-dir", str(tmp_path), str(SEED)).stdout
    warm = gfpcheck("scan", "--format", "sarif", "--cache-dir", str(tmp_path), str(SEED)).stdout
    serial = gfpcheck("scan", "--format", "sarif", "--no-cache", "-j", "1", str(SEED)).stdout
    assert cold == warm == serial
