from alert_rules.main import run

run()
