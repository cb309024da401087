from roomwarden.cli import app

app()
