from __future__ import annotations

from .harness import main

main()
