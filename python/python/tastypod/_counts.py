"""The counters every tracker derives from its counts: ``num_*``,
``fraction_*`` and ``percent_*``, tastypy's names."""

from __future__ import annotations

from typing import Dict


class _Counters:
    """Needs ``counts()``: a dict with ``total``, ``done``, ``aborted``,
    ``exhausted``, ``todo``, ``claimed``, ``tried`` and ``tries``."""

    def counts(self) -> Dict[str, int]:
        raise NotImplementedError

    def num_done(self) -> int:
        return int(self.counts()["done"])

    def num_tried(self) -> int:
        return int(self.counts()["tried"])

    def num_aborted(self) -> int:
        return int(self.counts()["aborted"])

    def num_exhausted(self) -> int:
        return int(self.counts()["exhausted"])

    def num_todo(self) -> int:
        return int(self.counts()["todo"])

    def num_tries(self) -> int:
        return int(self.counts()["tries"])

    def _fraction(self, name: str, inverse: bool = False) -> float:
        c = self.counts()
        if c["total"] == 0:
            return 0.0
        n = c["total"] - c[name] if inverse else c[name]
        return float(n) / c["total"]

    def fraction_done(self) -> float:
        return self._fraction("done")

    def fraction_not_done(self) -> float:
        return self._fraction("done", True)

    def fraction_tried(self) -> float:
        return self._fraction("tried")

    def fraction_not_tried(self) -> float:
        return self._fraction("tried", True)

    def fraction_aborted(self) -> float:
        return self._fraction("aborted")

    def fraction_not_aborted(self) -> float:
        return self._fraction("aborted", True)

    @staticmethod
    def _percent(fraction: float, decimals: int) -> str:
        return f"{100.0 * fraction:.{decimals}f} %"

    def percent_done(self, decimals: int = 2) -> str:
        """``"50.00 %"``."""
        return self._percent(self.fraction_done(), decimals)

    def percent_not_done(self, decimals: int = 2) -> str:
        return self._percent(self.fraction_not_done(), decimals)

    def percent_tried(self, decimals: int = 2) -> str:
        return self._percent(self.fraction_tried(), decimals)

    def percent_not_tried(self, decimals: int = 2) -> str:
        return self._percent(self.fraction_not_tried(), decimals)

    def percent_aborted(self, decimals: int = 2) -> str:
        return self._percent(self.fraction_aborted(), decimals)

    def percent_not_aborted(self, decimals: int = 2) -> str:
        return self._percent(self.fraction_not_aborted(), decimals)

