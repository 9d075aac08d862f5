"""Start the caption server from a checkout: `python server.py [--model M] [--host H] [--port P] ...`.

The same as `streamer serve` (which `pip install` provides); `python server.py --help` lists every option.
"""

import sys

from streamer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
