from blockmon.cli import run

run()
