"""Coverage-guided fuzzing of gbp-lab's decoders (issue 20).

* :mod:`fuzz.common` — the guard every input goes through: only :class:`GbpLabError` subclasses
  may escape, a CPU-time bound and a tracemalloc peak bound per input;
* :mod:`fuzz.harnesses` — one module per decoder surface, each with ``check(data)``;
* ``fuzz/corpus/<harness>/`` — committed seeds (real bytes) and regression inputs, replayed by
  ``tests/test_fuzz_corpus.py``; ``fuzz/pending/<harness>/`` — inputs of unfixed findings;
* ``fuzz/run.py`` — ``make fuzz``: runs every harness under atheris and prints a table;
* ``fuzz/make_seeds.py`` — regenerates the seed corpora (needs the ``test`` extra).

See ``fuzz/README.md`` and ``fuzz/FINDINGS.md``.
"""
