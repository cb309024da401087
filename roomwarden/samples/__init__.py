"""The bundled sample room (WAV files + room.json) and the script that synthesizes it."""
