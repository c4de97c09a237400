"""The distribution maps core/ and dissectors/ into the gbp_lab namespace, for wheels and editable
installs alike."""
import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_editable_install_maps_top_level_folders():
    import gbp_lab
    import gbp_lab.core
    import gbp_lab.dissectors

    assert os.path.samefile(os.path.dirname(gbp_lab.core.__file__), os.path.join(ROOT, "core"))
    assert os.path.samefile(os.path.dirname(gbp_lab.dissectors.__file__), os.path.join(ROOT, "dissectors"))
    assert os.path.samefile(os.path.dirname(gbp_lab.__file__), os.path.join(ROOT, "gbp_lab"))


@pytest.mark.slow
def test_wheel_installs_into_fresh_venv_and_imports(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), ROOT], check=True, cwd=tmp_path)
    wheels = list(dist.glob("gbp_lab-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "gbp_lab/core/__init__.py" in names
    assert "gbp_lab/core/mls/suites.py" in names
    assert "gbp_lab/dissectors/__init__.py" in names
    assert not any(n.startswith(("core/", "dissectors/", "tests/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # install the wheel alone; its dependencies come from this test run's environment, appended
    # after the fresh venv's own site-packages (PYTHONPATH does not process .pth files, so the
    # editable finder of the outer environment is not active there)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                    str(wheels[0])], check=True)
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])
    code = ("import gbp_lab, gbp_lab.core, gbp_lab.dissectors, gbp_lab.core.mls.suites as s;"
            "print(gbp_lab.core.__file__); print(s.CipherSuite.get(1).hash_length)")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    core_file, nh = out.stdout.split()
    assert str(venv) in core_file and "site-packages/gbp_lab/core/__init__.py" in core_file
    assert nh == "32"


def test_lab_command_opens_the_notebooks():
    from gbp_lab.cli import build_parser
    from gbp_lab.lab_cmd import FIRST_NOTEBOOK, command, notebooks_dir

    args = build_parser().parse_args(["lab", "--", "--no-browser"])
    assert args.jupyter_args == ["--no-browser"] and args.dir is None
    nb = notebooks_dir()
    cmd = command(nb, args.jupyter_args)
    assert cmd[1] == "lab" and cmd[2] == f"--notebook-dir={nb}" and "--no-browser" in cmd
    assert cmd[-1] == FIRST_NOTEBOOK  # resolved against the working directory: run with cwd=nb
    assert os.path.exists(cmd[0]) and os.path.exists(os.path.join(nb, FIRST_NOTEBOOK))
