"""``python -m omnirm.cli.docgen --write|--check`` (what scripts/gen_docs.sh runs)."""

import sys

from omnirm.cli.docgen.files import main

if __name__ == "__main__":
    sys.exit(main())
