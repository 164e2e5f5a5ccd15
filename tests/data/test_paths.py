"""Tests of capstone.data.paths: where the data is looked for, and where capstone writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from capstone.data import paths
from capstone.data.paths import (
    CAPTIONS_FILE,
    FEATURES_FILE,
    GLOVE_FILE,
    DataFiles,
    cache_dir,
    data_home,
    demo_dir,
    demo_files,
    locate_data,
    runs_dir,
)


def make_folder(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("x")
    return folder


BOTH = (CAPTIONS_FILE, FEATURES_FILE)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated environment: home, CAPSTONE_HOME, an empty cogworks cache, no CAPSTONE_DATA."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("CAPSTONE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAPSTONE_DATA", raising=False)
    cog = tmp_path / "cog_data"
    monkeypatch.setattr(paths, "COGWORKS_CACHE", cog)
    return tmp_path


def expect(found: DataFiles, folder: Path, source: str, glove: Path | None = None):
    assert found == DataFiles(folder / CAPTIONS_FILE, folder / FEATURES_FILE, glove, source)


def test_file_names_are_the_course_ones():
    assert CAPTIONS_FILE == "captions_train2014.json"
    assert FEATURES_FILE == "resnet18_features.pkl"
    assert GLOVE_FILE == "glove.6B.200d.txt.w2v"


# --- where cogworks-data keeps the course files: pooch.os_cache("cog_data") --------------------


@pytest.fixture
def platform(monkeypatch, tmp_path):
    """Make platformdirs answer as on another system (it picks its class once, at import)."""
    import platformdirs
    import platformdirs.macos
    import platformdirs.unix
    import platformdirs.windows

    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    # Windows' known-folder lookup needs the Windows API: answer it from here
    local = str(tmp_path / "AppData" / "Local")
    monkeypatch.setattr(platformdirs.windows, "get_win_folder", lambda csidl: local)

    def use(name: str) -> None:
        classes = {
            "linux": platformdirs.unix.Unix,
            "darwin": platformdirs.macos.MacOS,
            "win32": platformdirs.windows.Windows,
        }
        monkeypatch.setattr(platformdirs, "PlatformDirs", classes[name])

    return use


@pytest.mark.parametrize(
    ("system", "folder"),
    [
        ("linux", ("user", ".cache", "cog_data")),
        ("darwin", ("user", "Library", "Caches", "cog_data")),
        # pooch passes no appauthor: platformdirs then repeats the app name as the author
        ("win32", ("AppData", "Local", "cog_data", "cog_data", "Cache")),
    ],
)
def test_cogworks_cache_on_each_system(platform, tmp_path, system, folder):
    platform(system)
    assert paths.cogworks_cache() == tmp_path.joinpath(*folder)


def test_cogworks_cache_follows_xdg_cache_home_on_linux(platform, tmp_path, monkeypatch):
    platform("linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cogworks_cache() == tmp_path / "xdg" / "cog_data"


def test_the_demo_fallback_says_where_it_looked(env):
    assert locate_data().looked_in == env / "cog_data"
    assert demo_files().looked_in is None  # the demo asked for: nothing was looked for
    assert locate_data(make_folder(env / "d", *BOTH)).looked_in is None


# --- search order: argument > CAPSTONE_DATA > cogworks cache > demo ---------------------------


def test_demo_when_nothing_else(env):
    found = locate_data()
    expect(found, env / "home" / "minicoco", "demo")
    assert found.is_demo
    assert found == demo_files()


def test_argument_beats_everything(env, monkeypatch):
    arg = make_folder(env / "arg", *BOTH)
    monkeypatch.setenv("CAPSTONE_DATA", str(make_folder(env / "envdata", *BOTH)))
    make_folder(env / "cog_data", *BOTH)
    found = locate_data(arg)
    expect(found, arg, "argument")
    assert not found.is_demo


def test_argument_as_str_and_tilde(env):
    make_folder(env / "user" / "coco", *BOTH)
    expect(locate_data("~/coco"), env / "user" / "coco", "argument")
    expect(locate_data(str(env / "user" / "coco")), env / "user" / "coco", "argument")


def test_capstone_data_beats_cogworks(env, monkeypatch):
    folder = make_folder(env / "envdata", *BOTH)
    make_folder(env / "cog_data", *BOTH)
    monkeypatch.setenv("CAPSTONE_DATA", str(folder))
    expect(locate_data(), folder, "CAPSTONE_DATA")


def test_empty_capstone_data_is_ignored(env, monkeypatch):
    monkeypatch.setenv("CAPSTONE_DATA", "")
    assert locate_data().source == "demo"


def test_cogworks_cache_beats_demo(env):
    cog = make_folder(env / "cog_data", *BOTH)
    expect(locate_data(), cog, "cogworks-data")


def test_cogworks_cache_with_tilde(env, monkeypatch):
    monkeypatch.setattr(paths, "COGWORKS_CACHE", Path("~/.cache/cog_data"))
    cog = make_folder(env / "user" / ".cache" / "cog_data", *BOTH)
    expect(locate_data(), cog, "cogworks-data")


@pytest.mark.parametrize("present", [(), (GLOVE_FILE,)])
def test_a_cogworks_cache_without_course_data_falls_back_to_demo(env, present):
    make_folder(env / "cog_data", *present)
    assert locate_data().source == "demo"


@pytest.mark.parametrize(
    ("present", "missing"), [(CAPTIONS_FILE, FEATURES_FILE), (FEATURES_FILE, CAPTIONS_FILE)]
)
def test_a_partial_cogworks_cache_is_an_error_not_the_demo(env, present, missing):
    cog = make_folder(env / "cog_data", present)
    with pytest.raises(
        FileNotFoundError, match=rf"^{missing} not found in {cog} \(the data folder"
    ):
        locate_data()


def test_cogworks_cache_glove(env):
    cog = make_folder(env / "cog_data", *BOTH, GLOVE_FILE)
    expect(locate_data(), cog, "cogworks-data", glove=cog / GLOVE_FILE)


# --- GloVe file ------------------------------------------------------------------------------


def test_glove_set_when_present(env):
    folder = make_folder(env / "arg", *BOTH, GLOVE_FILE)
    assert locate_data(folder).glove == folder / GLOVE_FILE


def test_glove_none_when_absent(env):
    folder = make_folder(env / "arg", *BOTH)
    assert locate_data(folder).glove is None


def test_glove_folder_is_not_a_file(env):
    folder = make_folder(env / "arg", *BOTH)
    (folder / GLOVE_FILE).mkdir()
    assert locate_data(folder).glove is None


# --- missing files in a named folder ---------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ((CAPTIONS_FILE,), FEATURES_FILE),
        ((FEATURES_FILE,), CAPTIONS_FILE),
        ((GLOVE_FILE,), f"{CAPTIONS_FILE}, {FEATURES_FILE}"),
    ],
)
def test_argument_folder_missing_a_file(env, present, missing):
    folder = make_folder(env / "arg", *present)
    with pytest.raises(FileNotFoundError) as info:
        locate_data(folder)
    message = str(info.value)
    assert message.startswith(
        f"{missing} not found in {folder} (the data folder given by argument)"
    )
    assert "cogworks-data" in message
    assert "get_data_path" in message
    assert "python -m capstone demo" in message


def test_argument_folder_that_does_not_exist(env):
    folder = env / "no_such_folder"
    with pytest.raises(FileNotFoundError, match=re.escape(f"not found in {folder}")):
        locate_data(folder)


def test_capstone_data_missing_a_file_does_not_fall_back(env, monkeypatch):
    folder = make_folder(env / "envdata", CAPTIONS_FILE)
    make_folder(env / "cog_data", *BOTH)  # would be usable, but CAPSTONE_DATA was asked for
    monkeypatch.setenv("CAPSTONE_DATA", str(folder))
    with pytest.raises(FileNotFoundError) as info:
        locate_data()
    message = str(info.value)
    assert message.startswith(f"{FEATURES_FILE} not found in {folder}")
    assert "CAPSTONE_DATA" in message and "cogworks-data" in message


def test_file_name_that_is_a_folder_counts_as_missing(env):
    folder = make_folder(env / "arg", CAPTIONS_FILE)
    (folder / FEATURES_FILE).mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(FEATURES_FILE)):
        locate_data(folder)


# --- data home -------------------------------------------------------------------------------


def test_data_home_from_env(env):
    assert data_home() == env / "home"
    assert cache_dir() == env / "home" / "cache"
    assert runs_dir() == env / "home" / "runs"
    assert demo_dir() == env / "home" / "minicoco"


def test_data_home_tilde(env, monkeypatch):
    monkeypatch.setenv("CAPSTONE_HOME", "~/capstone_here")
    assert data_home() == env / "user" / "capstone_here"


@pytest.fixture
def fake_checkout(env, monkeypatch):
    """Make capstone.data.paths believe it lives in ``<tmp>/checkout/capstone/data/paths.py``."""
    package = make_folder(env / "checkout" / "capstone" / "data")
    monkeypatch.setattr(paths, "__file__", str(package / "paths.py"))
    return env / "checkout"


@pytest.mark.parametrize("home_value", [None, ""])
def test_data_home_checkout_data_folder(env, fake_checkout, monkeypatch, home_value):
    make_folder(fake_checkout / "data", "README.md")
    if home_value is None:
        monkeypatch.delenv("CAPSTONE_HOME")
    else:
        monkeypatch.setenv("CAPSTONE_HOME", home_value)
    assert data_home() == fake_checkout / "data"
    assert demo_dir() == fake_checkout / "data" / "minicoco"


def test_capstone_home_beats_checkout(env, fake_checkout):
    make_folder(fake_checkout / "data", "README.md")
    assert data_home() == env / "home"


def test_data_home_user_cache_without_checkout_readme(env, fake_checkout, monkeypatch):
    make_folder(fake_checkout / "data")  # a data/ folder without README.md is not the checkout's
    monkeypatch.delenv("CAPSTONE_HOME")
    assert data_home() == env / "user" / ".cache" / "capstone"
    assert locate_data().captions == env / "user" / ".cache" / "capstone" / "minicoco" / (
        CAPTIONS_FILE
    )


def test_locate_data_creates_nothing(env):
    before = sorted(p.relative_to(env) for p in env.rglob("*"))
    locate_data()
    demo_files()
    data_home()
    assert sorted(p.relative_to(env) for p in env.rglob("*")) == before


# --- a data home, cache or demo folder that is a file ------------------------------------------


def test_a_data_home_that_is_a_file(env, monkeypatch):
    home = env / "home_file"
    home.write_text("not a folder")
    monkeypatch.setenv("CAPSTONE_HOME", str(home))
    message = rf"^the data home \(\$CAPSTONE_HOME\) {home} is a file, not a folder: move it"
    for where in (data_home, cache_dir, runs_dir, demo_dir, locate_data):
        with pytest.raises(NotADirectoryError, match=message):
            where()
    assert home.read_text() == "not a folder"


def test_a_data_home_below_a_file(env, monkeypatch):
    blocker = env / "blocker"
    blocker.write_text("x")
    monkeypatch.setenv("CAPSTONE_HOME", str(blocker / "home"))
    with pytest.raises(NotADirectoryError, match=rf"cannot be made: {blocker} is a file, not a"):
        data_home()


@pytest.mark.parametrize(
    ("name", "where", "what"),
    [("cache", cache_dir, "the cache folder"), ("minicoco", demo_dir, "the demo folder")],
)
def test_a_cache_or_demo_folder_that_is_a_file(env, name, where, what):
    make_folder(env / "home")
    (env / "home" / name).write_text("x")
    with pytest.raises(NotADirectoryError, match=rf"^{what} {env / 'home' / name} is a file"):
        where()


def test_the_command_line_names_a_data_home_that_is_a_file(env, monkeypatch, capsys):
    from capstone.frontends.cli import main

    home = env / "home_file"
    home.write_text("not a folder")
    monkeypatch.setenv("CAPSTONE_HOME", str(home))
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the data home ($CAPSTONE_HOME) {home} is a file, not a folder")
    assert "Errno" not in err and home.read_text() == "not a folder"
