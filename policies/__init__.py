"""CrossGuard policy pack for aks-serving; `rules` is its pure, stdlib-only rule module."""
