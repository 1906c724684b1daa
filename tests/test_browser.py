"""Browser tests in Debian's chromium, driven by Playwright (`make chromium` installs the browser; Playwright never
downloads one): a plotly FigureWidget moved by a slider in JupyterLab, and the offline docs site of
`hyperrep_nb.docs` drawing plain figures and saved widgets with nothing loaded from another host.
Screenshots go to each test's tmp_path and to test_artifacts/ (ignored by git)."""
import contextlib, functools, http.server, json, os, re, secrets, shutil, socket, subprocess, sys, threading, time, urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from playwright.sync_api import sync_playwright

from hyperrep_nb.docs import build_offline_docs, compact_widgets

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test_artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# without the background-networking flags chromium opens connections the closed network refuses
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# JupyterLab user settings: never ask about (or fetch) the news feed; open a notebook with the kernel its metadata names
# (by default JupyterLab 4 asks with a dialog)
LAB_SETTINGS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
                "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True}}

# A FigureWidget and a slider wired to it: `power` redraws the curve y = x ** power.
WIDGET_CELLS = ["import ipywidgets as W\nimport plotly.graph_objects as go",
                "x = list(range(-10, 11))\n"
                "figure = go.FigureWidget(go.Scatter(x=x, y=x), layout=dict(title='y = x ** power', height=360, width=640))\n"
                "power = W.IntSlider(value=1, min=1, max=4, description='power')\n"
                "def redraw(change): figure.data[0].y = [v ** change['new'] for v in x]\n"
                "power.observe(redraw, 'value')\n"
                "W.VBox([power, figure])"]
# A package widget on a tiny zoo: its figures are filled after they are created (the case plotly leaves out of saved state).
PACKAGE_CELLS = ["import tempfile\nfrom pathlib import Path\nfrom hyperrep_nb.zoo import zoo_config, train_zoo\n"
                 "from hyperrep_nb.model import ae_config\nfrom hyperrep_nb.train import train_hyperrep\nfrom hyperrep_nb.widgets import noise_widget",
                 "folder = Path(tempfile.mkdtemp())\n"
                 "zoo = train_zoo(zoo_config('digits', models=12, epochs=2), folder / 'zoo', device='cpu', progress=False)\n"
                 "bundle = train_hyperrep(zoo, folder / 'ae', ae_config('cpu', epochs=1), window=(1, 2), device='cpu', progress=False)\n"
                 "noise_widget(bundle, levels=(0, 0.5))"]
# Resolves with the kernel's name once the open notebook's kernel has answered JupyterLab: cells run before that are
# silently dropped, which a loaded machine made likely (the kernel status shows "idle" before the kernel is attached).
KERNEL_READY = """async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel) throw new Error('JupyterLab opened the notebook without a kernel');
    await kernel.info;
    return kernel.name;
}"""
# True once every code cell shows an execution count ("[3]:", not "[ ]:" or "[*]:").
ALL_CELLS_RAN = """() => { const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)); }"""
FIGURE_CELLS = ["import plotly.graph_objects as go",
                "go.Figure(go.Scatter(y=[1, 3, 2]), layout=dict(title='a plain figure', height=360))"]


def write_notebook(path: Path, title: str, cells: list) -> Path:
    "A python3 notebook of a markdown title and code cells."
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}\n\n> A page of the browser test.")] + [new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


def execute(path: Path) -> Path:
    "Run a notebook in place the way nbconvert does, saving its widget state."
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return path


def free_port() -> int:
    "A TCP port nothing listens on now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(page, tmp_path: Path, name: str) -> Path:
    "Save a full-page screenshot in tmp_path and copy it to test_artifacts/."
    path = tmp_path / name
    page.screenshot(path=path, full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(path, ARTIFACTS / name)
    return path


def foreign(urls: list) -> list:
    "The URLs that would leave the machine."
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob", "about") and urlsplit(u).hostname not in LOCAL_HOSTS]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists(): pytest.fail(f"{CHROMIUM} is missing: run `make chromium`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    "A page that records every request, failed response and script error."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.requests, page.failures, page.errors = [], [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("response", lambda r: r.status >= 400 and page.failures.append(f"{r.status} {r.url}"))
    page.on("requestfailed", lambda r: page.failures.append(f"{r.failure} {r.url}"))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    page.close()


@pytest.fixture
def jupyterlab(tmp_path):
    "JupyterLab on 127.0.0.1 serving tmp_path/lab, with its config, settings and workspaces in tmp_path; yields (url, token, folder)."
    folder, state, port, token = tmp_path / "lab", tmp_path / "jupyter", free_port(), secrets.token_hex(16)
    folder.mkdir()
    for plugin, settings in LAB_SETTINGS.items():
        path = state / "settings" / f"{plugin.replace(':', '/')}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
               "--allow-root", "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly",  # no news feed, update check or PyPI extension search
               "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: the test waits on the notebook's kernel through it
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None: pytest.fail(f"jupyter lab exited: {(tmp_path / 'jupyterlab.log').read_text()}")
                time.sleep(0.5)
        else: pytest.fail("jupyter lab did not start in 60 s")
        yield url, token, folder
    finally:
        server.terminate()
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired: server.kill()
        log.close()


@pytest.fixture
def serve():
    "Serve a folder on 127.0.0.1: `serve(folder)` returns its base URL."
    servers = []
    def start(folder: Path) -> str:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args): pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"
    yield start
    for server in servers: server.shutdown()


def line_path(page) -> str:
    "The SVG path plotly drew for the first line trace on the page."
    return page.locator(".js-plotly-plot .scatterlayer .trace path.js-line").first.get_attribute("d")


@contextlib.contextmanager
def kept_on_failure(page, tmp_path: Path, name: str):
    "On an exception inside, save a screenshot and the JupyterLab log as test_artifacts/<name>.png and .log, then re-raise."
    try: yield
    except BaseException:
        screenshot(page, tmp_path, f"{name}.png")
        if (tmp_path / "jupyterlab.log").exists(): shutil.copyfile(tmp_path / "jupyterlab.log", ARTIFACTS / f"{name}.log")
        raise


def test_slider_redraws_figure_in_jupyterlab(jupyterlab, page, tmp_path):
    "Run a notebook in JupyterLab, move its slider with the keyboard, and see plotly redraw the curve."
    url, token, folder = jupyterlab
    write_notebook(folder / "slider.ipynb", "Slider", WIDGET_CELLS)
    page.goto(f"{url}/lab/tree/slider.ipynb?token={token}")
    with kept_on_failure(page, tmp_path, "jupyterlab_failed"):
        page.wait_for_function("() => window.jupyterapp?.shell.currentWidget?.sessionContext", timeout=90_000)
        assert page.evaluate(KERNEL_READY) == "python3"
        # Run > Run All Cells, as a user would (exact labels: "Restart Kernel and Run All Cells…" is in the same menu)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_function(ALL_CELLS_RAN, timeout=90_000)
        page.wait_for_selector(".jp-OutputArea .js-plotly-plot .scatterlayer .trace path.js-line", timeout=90_000)
        readout = page.locator(".widget-slider .widget-readout").first
        assert readout.inner_text().strip() == "1"
        before = line_path(page)
        screenshot(page, tmp_path, "jupyterlab_before.png")

        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        page.wait_for_function("(before) => { const p = document.querySelector('.js-plotly-plot .scatterlayer .trace path.js-line');"
                               " return p && p.getAttribute('d') !== before; }", arg=before, timeout=30_000)
        assert readout.inner_text().strip() == "2"
        after = line_path(page)
        assert after and after != before, "moving the slider redraws the curve"
        screenshot(page, tmp_path, "jupyterlab_after.png")
        assert foreign(page.requests) == [], "JupyterLab loaded something from another host"
        assert page.errors == []


def test_offline_docs_draw_figures_and_widgets(page, serve, tmp_path, monkeypatch):
    "Build offline docs of a figure notebook and a widget notebook, and view them with no request leaving the machine."
    monkeypatch.chdir(ROOT)  # nbdev reads settings.ini from the working directory
    assets = ROOT / "_docs_offline" / "_static"
    if not (assets / "require.js").exists(): pytest.fail("the pinned docs scripts are missing: run `make docs-assets`")
    nbs, site = tmp_path / "nbs", tmp_path / "site"
    nbs.mkdir()
    execute(write_notebook(nbs / "01_figure.ipynb", "Figure", FIGURE_CELLS))
    widget_nb = execute(write_notebook(nbs / "02_widget.ipynb", "Widget", WIDGET_CELLS))
    assert compact_widgets(widget_nb) == 1, "the saved FigureWidget carried plotly's bundle"
    compact_widgets(execute(write_notebook(nbs / "03_package.ipynb", "Package widget", PACKAGE_CELLS)))
    shutil.copytree(assets, site / "_static")
    build_offline_docs(nbs, site, download=False)
    base = serve(site)

    with kept_on_failure(page, tmp_path, "offline_failed"):
        page.goto(f"{base}/index.html")
        links = page.locator("nav.pages a")
        assert [links.nth(i).inner_text() for i in range(links.count())] == ["Contents", "Figure", "Widget", "Package widget"]
        links.nth(1).click()
        page.wait_for_selector(".plot-container .main-svg", timeout=60_000)
        box = page.locator(".plot-container .main-svg").first.bounding_box()
        assert box["width"] > 100 and box["height"] > 100
        assert page.locator(".js-plotly-plot .scatterlayer .trace").count() == 1
        assert page.locator(".js-plotly-plot .gtitle").first.text_content() == "a plain figure"
        screenshot(page, tmp_path, "offline_figure.png")

        page.goto(f"{base}/02_widget.html")
        page.wait_for_selector(".widget-slider .noUi-handle", timeout=60_000)
        page.wait_for_selector(".jp-OutputArea .js-plotly-plot .scatterlayer .trace path.js-line", timeout=60_000)
        assert page.locator(".widget-slider .widget-readout").first.inner_text().strip() == "1"
        assert page.locator(".js-plotly-plot .gtitle").first.text_content() == "y = x ** power"
        assert line_path(page).startswith("M") and "L" in line_path(page), "the saved curve (y = x) is drawn"
        screenshot(page, tmp_path, "offline_widget.png")

        page.goto(f"{base}/03_package.html")   # noise_widget: curves and a histogram drawn after the figures were made
        page.wait_for_selector(".jp-OutputArea .js-plotly-plot .scatterlayer .trace path.js-line", timeout=60_000)
        assert page.locator(".js-plotly-plot .gtitle").first.text_content() == "Decoded models against relative noise on z"
        assert page.locator(".js-plotly-plot .scatterlayer .trace").count() == 4, "both curves and their bands are in the saved state"
        assert page.locator(".js-plotly-plot .barlayer .trace").count() == 2, "both accuracy histograms are in the saved state"
        screenshot(page, tmp_path, "offline_package_widget.png")

        assert f"{base}/plotly-widgetbundle.js" in page.requests and f"{base}/_static/anywidget.js" in page.requests
        assert foreign(page.requests) == [], "a page loaded something from another host"
        assert page.failures == [] and page.errors == []
