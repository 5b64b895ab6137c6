"""The SDK installs and runs without anything of the server."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_MODULES = ("fader_server", "fastapi", "sqlalchemy", "starlette", "pydantic", "uvicorn")


def test_sdk_imports_nothing_of_the_server() -> None:
    code = (
        "import json, sys\n"
        "import fader_sdk, fader_sdk.client, fader_sdk.testing, fader_sdk.events\n"
        "import fader_sdk.sources.streaming, fader_sdk.sources.polling\n"
        "import fader_sdk.sources.bootstrap, fader_sdk.openfeature\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_MODULES})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_only_the_provider_module_imports_openfeature() -> None:
    code = (
        "import sys, fader_sdk, fader_sdk.client, fader_sdk.testing\n"
        "print(any(m.split('.')[0] == 'openfeature' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api() -> None:
    import fader_sdk

    assert sorted(fader_sdk.__all__) == [
        "FaderClient",
        "FlagSet",
        "FlagSetHolder",
        "NOT_READY_MESSAGE",
        "Origin",
        "__version__",
    ]
