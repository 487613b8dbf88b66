"""The model of the seed's pass against a kernel carrying the seed: 10,000 programs, one VM boot.

sigbpf's :func:`~sigbpf.resolve.resolver.resolve_kfunc_calls` predicts, for
every program of the differential corpus (``tests/differential``), whether the
patched 7.3 kernel accepts it, with which errno and which seed log line; the
kernel (``seed_vm``) loads them all and the test asserts that every
disagreement is one of the named, explained ones (docs/FINDINGS.md,
"Differential test: model vs patched kernel").  The host (6.18, no seed)
checks the loading harness and the programs' design: it refuses every
PROG_BTF call, and accepts the model-resolved programs exactly as predicted.
"""

from __future__ import annotations

import dataclasses
import errno
from collections import Counter

import pytest

from differential.compare import EXPLAINED, judge, table, verdicts
from differential.expect import Stage, predict
from differential.harness import load_corpus, measure_in_vm
from differential.programs import COUNT, SEED, Attach, CaseClass, generate

#: The first programs of the corpus (the same seed gives the same prefix), for the host checks.
HOST_SAMPLE = 2500


@pytest.fixture(scope="module")
def corpus():
    return generate(SEED, COUNT)


@pytest.fixture(scope="module")
def host_vmlinux():
    from sigbpf.btf import BTF

    return BTF.load_vmlinux()


def test_corpus_is_seeded_and_covers_every_class(corpus):
    assert len(corpus.cases) >= 10_000
    assert generate(SEED, COUNT).digest() == corpus.digest()
    assert generate(SEED + 1, COUNT).digest() != corpus.digest()
    assert generate(SEED, HOST_SAMPLE).cases == corpus.cases[:HOST_SAMPLE]
    per_class = Counter(c.klass for c in corpus.cases)
    assert set(per_class) == set(CaseClass) and min(per_class.values()) >= 300
    assert {c.attach for c in corpus.cases} == set(Attach)
    assert len({c.btf for c in corpus.cases}) == len(corpus.btfs) == 3
    # Every program has at least one CALL with src_reg 3; many have a subprogram, helper calls
    # and two-slot ld_imm64 instructions.
    for c in corpus.cases:
        assert any(i.code in (0x85, 0x86) and i.src == 3 for i in c.insns), c
    assert sum(any(i.is_pseudo_call for i in c.insns) for c in corpus.cases) > 3000
    assert sum(any(i.is_helper_call for i in c.insns) for c in corpus.cases) > 3000
    assert sum(any(i.is_ld_imm64 for i in c.insns) for c in corpus.cases) > 3000


def test_each_class_meets_the_stage_it_is_built_for(corpus, host_vmlinux):
    """The prediction (host BTF) puts each class where it belongs: nothing is vacuous."""
    from sigbpf.btf import BTF

    prog_btfs = [BTF.parse(b.raw) for b in corpus.btfs]
    stages: dict[CaseClass, Counter] = {k: Counter() for k in CaseClass}
    lines: dict[CaseClass, Counter] = {k: Counter() for k in CaseClass}
    for c in corpus.cases:
        e = predict(c, prog_btfs, host_vmlinux)
        stages[c.klass][e.stage] += 1
        if e.seed_line:
            lines[c.klass][e.seed_line.split(": ", 1)[1].split()[0]] += 1
    for k in (CaseClass.VALID, CaseClass.VALID_LINE_INFO, CaseClass.VALID_CORE_RELO):
        assert set(stages[k]) == {Stage.ACCEPTED}, k
    assert set(stages[CaseClass.PLAIN_FUNCTION]) == {Stage.AFTER}
    # the model resolves a variadic FUNC: accepted, or a seed fault elsewhere in the program
    assert set(stages[CaseClass.VARIADIC]) == {Stage.ACCEPTED, Stage.SEED}
    assert set(stages[CaseClass.JMP32]) == {Stage.BEFORE}
    for k in (CaseClass.OFF, CaseClass.IMM_ZERO, CaseClass.IMM_NEGATIVE, CaseClass.IMM_OUT_OF_RANGE,
              CaseClass.IMM_NOT_FUNC, CaseClass.NAME_MISSING, CaseClass.NAME_VMLINUX_TYPE,
              CaseClass.UNKNOWN_KFUNC, CaseClass.EARLY_FAILURE, CaseClass.NO_PROG_BTF,
              CaseClass.FD_ONLY):
        assert set(stages[k]) == {Stage.SEED}, k
    # "PROG_BTF resolution requires ...", "imm N is not a FUNC", "NAME not found"
    assert set(lines[CaseClass.FD_ONLY]) == set(lines[CaseClass.NO_PROG_BTF]) == {"PROG_BTF"}
    assert set(lines[CaseClass.OFF]) == {"PROG_BTF"}
    assert set(lines[CaseClass.IMM_NOT_FUNC]) == {"imm"}
    assert len(lines[CaseClass.EARLY_FAILURE]) > 2


def test_host_kernel_refuses_every_prog_btf_call(kernel, corpus, host_vmlinux):
    """6.18 has no seed: the loading harness sees "BPF_CALL uses reserved fields" for every
    program, or the earlier "unknown opcode 86" for a BPF_JMP32|BPF_CALL."""
    from sigbpf.btf import BTF

    sample = generate(SEED, HOST_SAMPLE)
    prog_btfs = [BTF.parse(b.raw) for b in sample.btfs]
    for case, seen in zip(sample.cases, load_corpus(sample)):
        before = predict(case, prog_btfs, host_vmlinux).stage is Stage.BEFORE
        want = "unknown opcode 86" if before else "BPF_CALL uses reserved fields"
        assert (seen.accepted, seen.errno, seen.seed_line, seen.reason) == (
            False, errno.EINVAL, None, want), case


def test_host_kernel_loads_the_model_resolved_programs_as_predicted(kernel, host_vmlinux):
    """The programs' design, checked where the seed is not needed: what the model resolves
    (for 6.18's BTF) and loads with src_reg 2 is accepted, or refused with "calling kernel
    function X is not allowed" (EACCES) exactly where a FUNC that is no kfunc is called, or
    refused at registration where a variadic FUNC is (the explained disagreement: 6.18's
    add_subprog_and_kfunc() registers each kfunc call in its walk, as 7.3's add_kfuncs())."""
    from sigbpf.btf import BTF
    from sigbpf.resolve.resolver import attached_prog_btf, resolve_kfunc_calls

    sample = generate(SEED, HOST_SAMPLE)
    prog_btfs = [BTF.parse(b.raw) for b in sample.btfs]
    resolved, wanted = [], []
    for case in sample.cases:
        want = predict(case, prog_btfs, host_vmlinux)
        if want.stage in (Stage.ACCEPTED, Stage.AFTER):
            prog_btf = attached_prog_btf(prog_btfs[case.btf], func_info=bool(case.func_info),
                                         line_info=bool(case.line_info),
                                         core_relos=bool(case.core_relos))
            insns = resolve_kfunc_calls(case.insns, prog_btf, host_vmlinux).insns
            resolved.append(dataclasses.replace(case, insns=insns))
            wanted.append(want)
    seen = load_corpus(dataclasses.replace(sample, cases=tuple(resolved)))
    judged = [judge(case, want, got) for case, want, got in zip(resolved, wanted, seen)]
    wrong = [v.describe() for v in judged if not v.agrees and v.explained_by is None]
    assert not wrong, "\n".join(wrong[:10])
    stages = Counter(w.stage for w in wanted)
    assert stages[Stage.ACCEPTED] > 500 and stages[Stage.AFTER] > 100
    assert Counter(v.explained_by for v in judged)["registration_between_resolutions"] > 10


def test_patched_kernel_agrees_with_the_model(seed_vm, corpus):
    """One boot of the patched kernel, every program loaded; zero unexplained disagreements."""
    m = measure_in_vm(seed_vm, SEED, COUNT)
    assert m.digest == corpus.digest(), "the guest generated another corpus"
    results = verdicts(corpus, m.observed, m.vmlinux)
    unexplained = [v for v in results if not v.agrees and v.explained_by is None]
    assert not unexplained, (f"{len(unexplained)} unexplained disagreements, e.g.:\n"
                             + "\n".join(v.describe() for v in unexplained[:15]))
    used = {v.explained_by for v in results if v.explained_by}
    assert used == {x.name for x in EXPLAINED}, "an explained disagreement no longer occurs"
    # The kernel itself went through every stage: accepted, refused by the seed with each of its
    # reachable messages, refused before it and after it.
    kinds = Counter(v.observed.seed_line.split(": ", 1)[1].split()[0]
                    for v in results if v.observed.seed_line)
    assert set(kinds) >= {"PROG_BTF", "imm"} and sum(kinds.values()) > 6000
    assert sum(1 for v in results if v.observed.seed_line
               and v.observed.seed_line.endswith("not found in vmlinux BTF")) > 1000
    assert sum(v.observed.accepted for v in results) > 2000
    assert sum(v.observed.errno == errno.EACCES for v in results) > 300
    assert sum(v.observed.reason == "unknown opcode 86" for v in results) > 300
    # the explained disagreements are the variadic class's, and not all of it
    rows = {r.klass: r for r in table(results)}
    assert all(r.explained == 0 for k, r in rows.items() if k is not CaseClass.VARIADIC)
    assert 0 < rows[CaseClass.VARIADIC].explained < rows[CaseClass.VARIADIC].programs
