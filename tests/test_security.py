"""Security: the source runs nothing it reads (no pickle, no eval/exec, torch.load only with weights_only=True, no
shell=True, no unsafe YAML), ONNX external data stays inside the model's folder, and names that come from data sets
(image folders, archives) never lead outside their folder. The source is read with the `ast` module, so a Qt
`dialog.exec()` method call is told apart from the builtin `exec()`, and comments or strings never count."""
from __future__ import annotations

import ast
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("engine", "gui", "scripts", "bench", "packaging", "run.py")
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "jsonpickle"}


def sources() -> list[Path]:
    files = []
    for name in SCANNED:
        p = ROOT / name
        files += [p] if p.is_file() else sorted(p.rglob("*.py"))
    return files


def _keyword(call: ast.Call, name: str):
    """The keyword argument `name` of a call: its constant value, "other" when not a constant, None when absent."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "other"
    return None


def _dotted(node: ast.AST) -> str:
    """`torch.load` for the call target torch.load, `np.lib.npyio.load` ..., "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def findings(code: str, where: str = "<snippet>", engine: bool = False) -> list[str]:
    """Every unsafe construct in `code`, as 'where:line: what'. `engine` adds the engine's own rule: a model is
    switched to evaluation with `model.train(False)`, never `.eval()` (so a text search for eval( finds nothing)."""
    tree = ast.parse(code)
    found = []
    imported_as: dict[str, str] = {}  # local name -> the dotted name it stands for (from torch import load)

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    flag(node, f"imports {alias.name}")
                imported_as[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in UNSAFE_MODULES:
                flag(node, f"imports from {module}")
            for alias in node.names:
                imported_as[alias.asname or alias.name] = f"{module}.{alias.name}"
                if alias.name in ("eval", "exec") or alias.name in UNSAFE_MODULES:
                    flag(node, f"imports {alias.name} from {module}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        full = f"{imported_as.get(head, head)}.{rest}" if rest else imported_as.get(head, head)
        if isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec", "compile"):
            flag(node, f"calls the builtin {node.func.id}()")
        constant = bool(node.args) and isinstance(node.args[0], ast.Constant)
        if full in ("__import__", "importlib.import_module") and not constant:  # a module named by data
            flag(node, f"{full}() of a name that is not written in the code")
        if full in ("builtins.eval", "builtins.exec"):
            flag(node, f"calls {full}()")
        if full == "torch.load" and _keyword(node, "weights_only") is not True:
            flag(node, "torch.load without weights_only=True")
        if _keyword(node, "weights_only") is False:
            flag(node, "weights_only=False")
        if _keyword(node, "allow_pickle") not in (None, False):
            flag(node, "allow_pickle is not False")
        if _keyword(node, "shell") not in (None, False):
            flag(node, "a subprocess with shell=True")
        if full in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            flag(node, f"{full}() runs a shell")
        if full in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
            flag(node, f"{full}() can build arbitrary objects")
        if full == "yaml.load":
            loader = next((kw.value for kw in node.keywords if kw.arg == "Loader"),
                          node.args[1] if len(node.args) > 1 else None)
            if loader is None or not _dotted(loader).endswith(("SafeLoader", "CSafeLoader")):
                flag(node, "yaml.load without SafeLoader")
        if engine and isinstance(node.func, ast.Attribute) and node.func.attr in ("eval", "exec") and not node.args:
            flag(node, f".{node.func.attr}() in the engine: write .train(False)")
    return found


def test_the_scanned_source_is_there():
    files = sources()
    names = {f.relative_to(ROOT).parts[0] for f in files}
    assert {"engine", "gui", "scripts", "bench", "run.py"} <= names, names
    assert len(files) > 60


TRUSTED_EXEC = "# trusted-exec: the user's own custom layer, run only after trust"


def test_the_source_runs_nothing_it_reads():
    """Nothing in the source runs code it reads, with ONE exception: a custom layer's code (engine/custom.py), on
    the single marked line that runs only after the user trusted that code. Exactly its exec() and compile()
    are allowed there, nothing else anywhere."""
    marked = [i + 1 for i, line in enumerate((ROOT / "engine" / "custom.py").read_text().splitlines())
              if TRUSTED_EXEC in line]
    assert len(marked) == 1, marked
    allowed = {f"engine/custom.py:{marked[0]}: calls the builtin exec()",
               f"engine/custom.py:{marked[0]}: calls the builtin compile()"}
    problems = []
    for path in sources():
        rel = path.relative_to(ROOT)
        problems += findings(path.read_text(encoding="utf-8"), str(rel), engine=rel.parts[0] == "engine")
    assert allowed <= set(problems), problems  # the scan does see the one it allows
    rest = [p for p in problems if p not in allowed]
    assert not rest, "\n".join(rest)


@pytest.mark.parametrize("code, what", [
    ("import pickle", "imports pickle"),
    ("import pickle as p", "imports pickle"),
    ("from pickle import loads", "imports from pickle"),
    ("import dill", "imports dill"),
    ("eval('1+1')", "builtin eval()"),
    ("exec(code)", "builtin exec()"),
    ("from builtins import exec", "imports exec"),
    ("import builtins\nbuiltins.eval('1')", "builtins.eval()"),
    ("torch.load('x.pt')", "torch.load without weights_only=True"),
    ("import torch as t\nt.load(f, map_location='cpu')", "torch.load without weights_only=True"),
    ("from torch import load\nload(f)", "torch.load without weights_only=True"),
    ("torch.load(f, weights_only=False)", "weights_only=False"),
    ("torch.load(f, weights_only=flag)", "torch.load without weights_only=True"),
    ("np.load(f, allow_pickle=True)", "allow_pickle"),
    ("subprocess.run('ls', shell=True)", "shell=True"),
    ("subprocess.Popen(cmd, shell=1)", "shell=True"),
    ("import os\nos.system('ls')", "os.system() runs a shell"),
    ("yaml.load(text)", "yaml.load without SafeLoader"),
    ("yaml.load(text, Loader=yaml.Loader)", "yaml.load without SafeLoader"),
    ("yaml.unsafe_load(text)", "can build arbitrary objects"),
    ("compile(src, 'f', 'exec')", "builtin compile()"),
    ("importlib.import_module(name)", "not written in the code"),
    ("__import__(settings['module'])", "not written in the code"),
])
def test_the_scanner_finds_each_unsafe_construct(code, what):
    found = findings(code)
    assert any(what in f for f in found), found


@pytest.mark.parametrize("code", [
    "dialog.exec()",                                   # Qt's modal loop: a method, not the builtin
    "app.exec()",
    "model.train(False)",
    "torch.load(f, weights_only=True, map_location='cpu')",
    "np.load(f, allow_pickle=False)",
    "subprocess.run([sys.executable, 'x.py'], check=True)",
    "yaml.load(text, Loader=yaml.SafeLoader)",
    "yaml.safe_load(text)",
    "x = 'eval(1) pickle exec(2)'  # eval(3)",          # text and comments are not code
    "evaluate(project)",
    "self.eval_batch_size = 3",
    "__import__('os').environ",
    "re.compile(pattern)",
])
def test_the_scanner_leaves_safe_code_alone(code):
    assert findings(code) == []


def test_model_eval_is_flagged_only_in_the_engine():
    assert findings("model.eval()", engine=True) == ["<snippet>:1: .eval() in the engine: write .train(False)"]
    assert findings("model.eval()") == [] and findings("dialog.exec()") == []


# ---- ONNX external data stays in the model's folder -----------------------------------------------------------

def _external_model(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = np.arange(16 * 8, dtype=np.float32).reshape(16, 8) / 100
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", s]) for n, s in (("x", 8), ("y", 16))]
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")], "ext", io[:1],
                              io[1:], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    path = folder / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
                    size_threshold=0)
    return path


def _relocate(path: Path, location: str) -> None:
    import onnx
    model = onnx.load(path, load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(model, path)


@pytest.fixture
def onnx_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external_model(folder)
    data = (folder / "weights.bin").read_bytes()
    (tmp_path / "outside.bin").write_bytes(data)          # the same bytes outside: refused for where they are
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "weights.bin").write_bytes(data)
    (folder / "linked_dir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (folder / "sub").mkdir()
    (folder / "sub" / "weights.bin").write_bytes(data)
    return path


@pytest.mark.parametrize("location", [
    "sub/../../outside.bin",      # climbs out through a real sub-folder
    "./../outside.bin",
    "linked_dir/weights.bin",     # a folder inside that is a link to one outside
    "/dev/zero",                  # an absolute path to a device
    "..",
    "sub/../../model/../outside.bin",
])
def test_onnx_external_data_never_leaves_the_models_folder(onnx_folder, tmp_path, location):
    from engine.onnx_import import OnnxImportError, import_onnx
    _relocate(onnx_folder, location)
    with pytest.raises(OnnxImportError) as info:
        import_onnx(onnx_folder, tmp_path / "out.layerloom")
    assert f"refers to external data outside its folder: {location}" in str(info.value)
    assert not (tmp_path / "out.layerloom").exists()


@pytest.mark.parametrize("location", ["file:///etc/passwd", "~/weights.bin", "C:\\weights.bin", "."])
def test_onnx_external_data_names_that_are_not_files_inside_are_refused(onnx_folder, tmp_path, location):
    from engine.onnx_import import OnnxImportError, import_onnx
    _relocate(onnx_folder, location)
    with pytest.raises(OnnxImportError, match="is missing from"):
        import_onnx(onnx_folder, tmp_path / "out.layerloom")


def test_onnx_external_data_in_a_real_sub_folder_is_read(onnx_folder, tmp_path):
    from engine.onnx_import import import_onnx
    _relocate(onnx_folder, "sub/weights.bin")
    assert import_onnx(onnx_folder, tmp_path / "out.layerloom").check_passed


@pytest.mark.parametrize("location", ["weights\x00.bin", "x" * 5000])
def test_onnx_external_data_with_an_impossible_name_is_refused_in_words(onnx_folder, tmp_path, location):
    from engine.onnx_import import OnnxImportError, import_onnx
    _relocate(onnx_folder, location)
    with pytest.raises(OnnxImportError):
        import_onnx(onnx_folder, tmp_path / "out.layerloom")


# ---- names from data sets ------------------------------------------------------------------------------------

def _image(path: Path, value: int) -> None:
    from PIL import Image
    Image.new("L", (6, 6), value).save(path)


def test_image_folder_links_out_of_the_folder_are_never_followed(tmp_path):
    from engine.data import load_data
    root = tmp_path / "set"
    for name, value in (("cats", 10), ("dogs", 200)):
        (root / name).mkdir(parents=True)
        for i in range(3):
            _image(root / name / f"{i}.png", value)
    secret = tmp_path / "secret"
    secret.mkdir()
    _image(secret / "private.png", 77)
    os.symlink("..", root / "up")                                        # a class folder that is the parent
    os.symlink(os.path.relpath(secret, root / "cats"), root / "cats" / "relative.png")  # ../../secret/...
    os.symlink(secret / "private.png", root / "dogs" / "absolute.png")
    os.symlink(secret, root / "dogs" / "nested_link")                    # a folder inside a class: not walked
    os.symlink(root / "cats" / "loop_b.png", root / "cats" / "loop_a.png")  # a link loop: skipped, no crash
    os.symlink(root / "cats" / "loop_a.png", root / "cats" / "loop_b.png")
    os.symlink(root / "cats" / "0.png", root / "dogs" / "alias.png")        # a link that stays inside: read
    bundle = load_data({"source": "image_folder", "params": {"path": str(root), "size": 6},
                        "split": {"val": 0.0, "test": 0.0}})
    assert bundle.class_names == ("cats", "dogs")
    assert bundle.num_samples == 7  # 3 cats, 3 dogs and the alias of a cat
    pixels = np.rint(bundle.train.x * 255).astype(int)
    assert 77 not in np.unique(pixels)  # the secret image was never read
    assert "links leading outside the folder skipped" in bundle.description


def test_npz_member_names_never_become_paths(tmp_path):
    from engine.data import load_data
    from engine.errors import DataError
    data = tmp_path / "data"
    data.mkdir()
    archive = data / "evil.npz"
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    with zipfile.ZipFile(archive, "w") as z:
        for name, array in (("../../escaped_x.npy", x), ("/abs_y.npy", np.arange(6) % 2)):
            with z.open(name, "w") as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(DataError, match="has no array 'x': set params.x_key to one of the arrays in it"):
        load_data({"source": "npz", "params": {"path": str(archive)}})
    bundle = load_data({"source": "npz", "params": {"path": str(archive), "x_key": "../../escaped_x",
                                                    "y_key": "/abs_y"}, "split": {"val": 0.0, "test": 0.0}})
    assert bundle.num_samples == 6  # read from the archive in memory, by name ...
    assert sorted(p for p in tmp_path.rglob("*")) == before  # ... and nothing written anywhere
    assert not Path("/abs_y.npy").exists()


def test_npz_and_idx_refuse_what_would_run_code_or_lie_about_sizes(tmp_path):
    import struct

    from engine.data import load_data
    from engine.errors import DataError
    archive = tmp_path / "objects.npz"
    with zipfile.ZipFile(archive, "w") as z:  # an object array: reading it back would unpickle
        with z.open("x.npy", "w") as f:
            np.lib.format.write_array(f, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
        with z.open("y.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros(4))
    with pytest.raises(DataError, match="cannot be read without running code"):
        load_data({"source": "npz", "params": {"path": str(archive)}})
    huge = tmp_path / "huge-idx"
    huge.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2**31, 2**31, 2**31) + b"\x00" * 64)
    with pytest.raises(DataError, match="should hold 2147483648 × 2147483648 × 2147483648 values"):
        load_data({"source": "idx", "params": {"images": str(huge), "target": "input"}})
