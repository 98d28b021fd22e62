"""Where the read-only shared material is: ``../shared`` beside the repository (tests and benches only).

``SHARED_DIR`` overrides it. The product never reads these paths; a user's machine has no shared/.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
REFERENCE_SHOP = SHARED / "fixtures" / "shop" / "shop.json"
REAL_ZH = SHARED / "audio" / "real" / "zh"
