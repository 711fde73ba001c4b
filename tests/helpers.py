"""Build an analysed program from C sources held in memory."""

from __future__ import annotations

from dataclasses import dataclass

from gfpcheck.checks import Analysis, run_checks
from gfpcheck.extract import extract_file
from gfpcheck.link import Program, link
from gfpcheck.propagate import state as st
from gfpcheck.propagate.contexts import Contexts
from gfpcheck.propagate.effects import Effects
from gfpcheck.propagate.origins import Origins


@dataclass
class Analysed:
    program: Program
    origins: Origins
    effects: Effects
    contexts: Contexts
    rules: object

    def fid(self, name: str, path: str | None = None) -> int:
        found = [i for i, f in enumerate(self.program.functions)
                 if f.name == name and (path is None or self.program.path(i) == path)]
        assert len(found) == 1, f"{name}: {len(found)} definitions"
        return found[0]

    def summary(self, name: str) -> st.Effect:
        return self.effects.summaries.get(self.fid(name), st.IDENTITY)

    def effect(self, held: dict[str, int] | None = None, scopes: dict[str, int] | None = None) -> st.Effect:
        """An effect by name: effect(held={"fs": 1}, scopes={"nofs": -1})."""
        return self.effects.space.effect(held, scopes)

    def states_at(self, function: str, callee: str, occurrence: int = 0) -> list[st.State]:
        """States in which `function` (as reached) makes its n-th call to `callee`."""
        fid = self.fid(function)
        calls = self.program.calls(fid)
        indices = [i for i, c in enumerate(calls) if c[0] == callee]
        sites = self.contexts.site_states(fid, self.contexts.reached[fid])
        return [self.effects.space.state(s) for s in st.members(sites[indices[occurrence]])]

    def held(self, state: st.State, family: str = "fs") -> int:
        return state.held[self.effects.space.family_index[family]]

    def depth(self, state: st.State, kind: str) -> int:
        return state.scopes[self.effects.space.scope_index[kind]]

    def findings(self):
        return run_checks(Analysis(self.program, self.rules, self.origins, self.effects, self.contexts))


def analyse(rules, sources: dict[str, str]) -> Analysed:
    facts = [extract_file(path, text.encode(), rules) for path, text in sorted(sources.items())]
    program = link(facts, rules)
    origins = Origins(program, rules)
    effects = Effects(program, rules, origins)
    contexts = Contexts(program, effects)
    return Analysed(program, origins, effects, contexts, rules)
