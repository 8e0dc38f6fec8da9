from omnirm.cli.main import run

run()
