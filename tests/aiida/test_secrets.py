"""Credentials are never stored (issue 11): not in input nodes, not in exit messages, not
in process reports, not in a dataset's ``source``, also when a failing client echoes the
key in another case or in part.

The Materials Project cannot be reached from the test machines: a stand-in client (an
object with the ``MPRester`` interface the importer uses) either fails with an error that
echoes the key (uppercased, lowercased, its first eight characters, in a header dump) or
returns real structures. What is tested is what *we* store, not what the Materials Project
does. After every case the whole profile is searched: every node's attributes, extras,
label, description and repository files, and every log (process report) entry, for the
key, its uppercase, its lowercase and its first and last eight characters.
"""

from __future__ import annotations

import json

import pytest
from aiida import orm

from aiida_crystinv.calculations.functions import compute_invariants, import_dataset, import_materials_project
from aiida_crystinv.secrets import cap_text, find_secret_keys, is_secret_key, redact, scrub_text
from aiida_crystinv.sources import materials_project as mp_source

#: A made-up key, mixed case so that its upper- and lowercase echoes differ from it.
KEY = "Zq7RkP2vXw9LmN4tYb6HcJ8dFs3GaE5u"
ECHOES = {"key": KEY, "uppercase": KEY.upper(), "lowercase": KEY.lower(), "first 8": KEY[:8], "last 8": KEY[-8:]}

#: Key names a user might put a credential under (casing and separators vary).
SECRET_NAMES = ("api_key", "apikey", "apiKey", "x-api-key", "X-API-KEY", "token", "Token", "password", "PASSWORD",
                "secret", "credential", "credentials", "Authorization", "access_token", "client_secret")


def node_count() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


#: Nodes with a larger pk were created by this module (the profile is shared by the session).
FIRST_PK: list[int] = []


@pytest.fixture(scope="module", autouse=True)
def first_pk():
    last = orm.QueryBuilder().append(orm.Node, project="id").order_by({orm.Node: {"id": "desc"}}).first()
    FIRST_PK.append(last[0] if last else 0)
    yield
    FIRST_PK.clear()


def stored_text() -> str:
    """Everything the profile holds since this module began that a user (or a leak) could
    read: every node's attributes, extras, label, description and repository files; every
    log entry (process reports)."""
    start = FIRST_PK[0] if FIRST_PK else 0
    parts: list[str] = []
    builder = orm.QueryBuilder().append(orm.Node, filters={"id": {">": start}}, project="*")
    for (node,) in builder.iterall():
        parts.append(json.dumps(node.base.attributes.all, default=str))
        parts.append(json.dumps(node.base.extras.all, default=str))
        parts.append(f"{node.label}\n{node.description}")
        for root, _, files in node.base.repository.walk():
            for name in files:
                path = root / name
                parts.append(node.base.repository.get_object_content(str(path), mode="rb").decode("latin-1"))
    logs = orm.QueryBuilder().append(orm.Log, filters={"dbnode_id": {">": start}}, project=["message", "metadata"])
    for (message, metadata) in logs.iterall():
        parts.append(str(message))
        parts.append(json.dumps(metadata, default=str))
    return "\n".join(parts)


def assert_no_key(text: str | None = None) -> None:
    text = stored_text() if text is None else text
    found = [what for what, echo in ECHOES.items() if echo in text]
    assert not found, f"the key was stored ({', '.join(found)})"


class FailingClient:
    """``MPRester`` stand-in whose search fails with an error echoing the key badly."""

    def __init__(self, api_key: str):
        self.api_key = api_key

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    @property
    def materials(self):
        return self

    @property
    def summary(self):
        return self

    def search(self, **query):
        key = self.api_key
        raise RuntimeError(
            f"401 REST query rejected for key {key.upper()} (begins {key[:8]}, ends {key[-8:]}); "
            f"request headers: {{'X-API-KEY': '{key.lower()}'}} url=https://api.example/?api_key={key}"
        )

    def get_database_version(self):
        raise RuntimeError(f"no version for {self.api_key}")


class WorkingClient(FailingClient):
    """``MPRester`` stand-in that returns two real structures (and fails to give a version,
    echoing the key)."""

    def search(self, **query):
        from pymatgen.core import Lattice, Structure

        nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        si = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])
        return [
            {"material_id": "mp-22862", "structure": nacl, "band_gap": 5.0},
            {"material_id": "mp-149", "structure": si, "band_gap": 0.6},
        ]


@pytest.fixture
def mp_key(monkeypatch):
    """``MP_API_KEY`` set to :data:`KEY` for the test."""
    monkeypatch.setenv(mp_source.API_KEY_VARIABLE, KEY)
    return KEY


def use_client(monkeypatch, client: type) -> None:
    monkeypatch.setattr(mp_source, "_mprester", lambda: client)


# --------------------------------------------------------------------------- the pure module
def test_secret_key_names_and_scrubbing():
    assert all(is_secret_key(name) for name in SECRET_NAMES)
    assert not any(is_secret_key(name) for name in ("structure_key", "material_ids", "k", "id_column", "formula",
                                                    "elements", "num_elements", "monkey"))
    nested = {"material_ids": ["mp-149"], "criteria": {"X-API-KEY": KEY, "ok": [1, {"Password": KEY}]}, "note": KEY}
    assert find_secret_keys(nested, "query") == ["query.criteria.X-API-KEY", "query.criteria.ok[1].Password"]
    cleaned = redact(nested, [KEY])
    assert cleaned == {"material_ids": ["mp-149"], "criteria": {"ok": [1, {}]}, "note": "***"}
    echoed = f"bad {KEY.upper()} or {KEY.lower()[3:15]}, first {KEY[:8]} x-api-key: {KEY}; token=abc123 Bearer qwertyuiop"
    scrubbed = scrub_text(echoed, [KEY])
    assert_no_key(scrubbed)
    assert "abc123" not in scrubbed and "qwertyuiop" not in scrubbed
    # ordinary messages are left alone
    plain = "record 'mp-149' (mp.json, record 3): target 'band_gap' is not a number ('n/a')"
    assert scrub_text(plain, [KEY]) == plain
    capped = cap_text("x" * 10_000, 300)
    assert len(capped) <= 300 and "characters cut" in capped


# --------------------------------------------------------------------------- refused inputs
@pytest.mark.parametrize("name", SECRET_NAMES)
def test_key_in_the_query_is_refused_before_anything_is_stored(mp_key, monkeypatch, name):
    """A credential under any key name, at the top or nested, refuses the launch at the
    port: no node (not even the query's Dict) exists afterwards, and the message names
    the key's place but never its value."""
    use_client(monkeypatch, WorkingClient)
    for query in ({"material_ids": ["mp-149"], name: KEY}, {"material_ids": ["mp-149"], "criteria": {name: KEY}},
                  {"material_ids": ["mp-149"], "headers": [{name: KEY}]}):
        for as_node in (True, False):
            before = node_count()
            with pytest.raises(ValueError) as info:
                import_materials_project.run_get_node(query=orm.Dict(query) if as_node else query)
            assert node_count() == before, f"{query}: a node was stored before the refusal"
            assert name in str(info.value) and "credential" in str(info.value)
            assert_no_key(str(info.value))
    assert_no_key()


def test_known_key_under_an_innocent_name_is_refused(mp_key, monkeypatch, tmp_path):
    """The value of MP_API_KEY (or of any credential-named environment variable) is a
    secret under any key name: a query or study holding it as `note`, in a list, or as a
    part of a longer text, or in another case, is refused before anything is stored."""
    use_client(monkeypatch, WorkingClient)
    monkeypatch.setenv("CRYSTINV_TEST_GITHUB_TOKEN", "gh_" + KEY[::-1])
    for query in ({"material_ids": ["mp-149"], "note": KEY}, {"material_ids": ["mp-149"], "notes": [f"key was {KEY.upper()}"]},
                  {"material_ids": ["mp-149"], "criteria": {"comment": "gh_" + KEY[::-1]}}, {"material_ids": ["mp-149"], KEY: 1}):
        before = node_count()
        with pytest.raises(ValueError) as info:
            import_materials_project.run_get_node(query=orm.Dict(query))
        assert node_count() == before, f"{query}: a node was stored before the refusal"
        assert "credential" in str(info.value)
        assert_no_key(str(info.value))
    assert find_secret_keys({"a": {"b": ["x", KEY]}}) == ["a.b[1]"]
    assert find_secret_keys({"a": "short"}, secrets=[KEY]) == []
    # and a text that echoes it is scrubbed without being told the key
    assert KEY not in scrub_text(f"failed for {KEY}") and "***" in scrub_text(f"failed for {KEY.lower()}")
    assert_no_key()


def test_key_in_options_and_specs_is_refused(mp_key, monkeypatch, tmp_path):
    """Options and descriptor specs of other processes refuse credentials the same way."""
    from aiida_crystinv.data import CrystalDatasetData
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, targets, units = ewald_landscape(n=3, seed=2)
    dataset = CrystalDatasetData.from_structures(structures, ids=ids, targets=targets, units=units).store()
    cif = tmp_path / "one.cif"
    cif.write_text(dataset.to_cif_text([ids[0]]))
    cases = [
        lambda: import_materials_project.run_get_node(query={"material_ids": ["mp-149"]}, options={"token": KEY}),
        lambda: compute_invariants.run_get_node(dataset=dataset, descriptor={"name": "amd", "k": 5, "apiKey": KEY}),
        lambda: import_dataset.run_get_node(file=orm.SinglefileData(cif), options={"on_error": "skip", "password": KEY}),
    ]
    for case in cases:
        before = node_count()
        with pytest.raises(ValueError) as info:
            case()
        assert node_count() == before
        assert "credential" in str(info.value)
        assert_no_key(str(info.value))
    assert_no_key()


def test_key_in_a_study_file_is_refused(mp_key, tmp_path):
    """A study whose Materials Project query (at any depth) or hand-off inputs hold a
    credential is refused when it is loaded, before anything is stored, by the Python API
    and by ``crystinv study run``; neither message shows the key."""
    from click.testing import CliRunner

    from aiida_crystinv.cli import cmd_crystinv
    from aiida_crystinv.workflows.study_file import StudyError, load_study

    base = ("name: leak\ntarget: band_gap\ndescriptors: [amd]\nmodels: [{name: knn, k: 1}]\n")
    studies = {
        "query.yaml": base + f"source:\n  materials_project:\n    query:\n      material_ids: [mp-149]\n      X-API-KEY: {KEY}\n",
        "nested.yaml": base + "source:\n  materials_project:\n    query:\n      material_ids: [mp-149]\n"
        f"      criteria:\n        headers: [{{apikey: {KEY}}}]\n",
        "handoff.yaml": base + "source: {synthetic: {n: 10}}\nscreening:\n  candidates: {synthetic: {n: 5}}\n"
        f"  handoff:\n    workflow: core.arithmetic.add_multiply\n    inputs: {{metadata: {{options: {{password: {KEY}}}}}}}\n",
        # the value of MP_API_KEY under an innocent name
        "innocent.yaml": base + f"source:\n  materials_project:\n    query:\n      material_ids: [mp-149]\n      note: {KEY}\n",
    }
    for name, text in studies.items():
        path = tmp_path / name
        path.write_text(text)
        before = node_count()
        with pytest.raises(StudyError) as info:
            load_study(path)
        assert "credential" in str(info.value), str(info.value)
        assert_no_key(str(info.value))
        result = CliRunner().invoke(cmd_crystinv, ["study", "run", str(path)])
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert_no_key(result.output)
        assert node_count() == before, f"{name}: nodes were stored"
    assert_no_key()


# --------------------------------------------------------------------------- echoes of a failing client
def test_failing_client_echo_is_scrubbed_from_exit_message_and_report(mp_key, monkeypatch):
    """The client fails with the key uppercased, lowercased, cut to its first and last
    eight characters and inside a header dump: the exit message keeps the failure (its
    type and status) and none of the echoes."""
    use_client(monkeypatch, FailingClient)
    before = node_count()
    _, node = import_materials_project.run_get_node(query={"material_ids": ["mp-149"]})
    assert node.exit_status == 202, node.exit_message
    assert "RuntimeError" in node.exit_message and "401" in node.exit_message
    assert_no_key(node.exit_message)
    assert not node.base.links.get_outgoing().all(), "a failed import created an output"
    assert node_count() == before + 2  # the query Dict and the process node: provenance of the failure
    assert_no_key()


def test_client_failing_outside_the_request_is_scrubbed(mp_key, monkeypatch):
    """A client that fails when it is created (not a request error) is reported with the
    key scrubbed too."""

    class Exploding(FailingClient):
        def __init__(self, api_key: str):
            raise ValueError(f"cannot use api key {api_key.swapcase()}")

    use_client(monkeypatch, Exploding)
    _, node = import_materials_project.run_get_node(query={"material_ids": ["mp-149"]})
    assert node.exit_status == 202 and "ValueError" in node.exit_message
    assert_no_key(node.exit_message)
    assert_no_key()


def test_successful_import_stores_no_key(mp_key, monkeypatch):
    """A working client: the dataset is stored with its query in ``source`` and the key
    nowhere (not in the query, not in the version the client failed to give)."""
    use_client(monkeypatch, WorkingClient)
    results, node = import_materials_project.run_get_node(
        query={"material_ids": ["mp-22862", "mp-149"]}, options={"properties": ["band_gap"]}
    )
    assert node.is_finished_ok, node.exit_message
    dataset = results["dataset"]
    assert dataset.ids == ["mp-22862", "mp-149"]
    assert dataset.source["extras"]["query"] == {"material_ids": ["mp-22862", "mp-149"]}
    assert_no_key()


def test_dataset_source_built_in_python_is_redacted(mp_key):
    """``CrystalDatasetData`` built by the Python API with credentials in its ``source``
    (any key name, nested in dicts and lists): they are removed before the node is stored."""
    from aiida_crystinv.data import CrystalDatasetData
    from aiida_crystinv.sources.synthetic import ewald_landscape

    ids, structures, targets, units = ewald_landscape(n=2, seed=5)
    source = {
        "uri": "https://api.example/summary",
        "description": "fetched by hand",
        "extras": {"query": {"material_ids": ["mp-149"], "apikey": KEY, "X-API-KEY": KEY},
                   "headers": [{"Authorization": f"Bearer {KEY}"}], "credentials": {"user": "me", "password": KEY}},
        "token": KEY,
    }
    node = CrystalDatasetData.from_structures(structures, ids=ids, targets=targets, units=units, source=source).store()
    assert node.source["extras"]["query"] == {"material_ids": ["mp-149"]}
    assert node.source["extras"]["headers"] == [{}]
    assert "credentials" not in node.source["extras"] and "token" not in node.source.get("extras", {})
    assert_no_key()
