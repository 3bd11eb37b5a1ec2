"""The `layerloom` command: summary, layers, train, search, export and import on top of the engine."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from .errors import LayerLoomError, ProjectError
from .layers import fmt
from .project import load_project
from .shapes import Analysis, analyze
from .units import format_bytes, format_count

EXIT_OK, EXIT_GRAPH_ERRORS, EXIT_BAD_FILE = 0, 1, 2


def _rows(analysis: Analysis, depth: int = 0, prefix: str = "") -> list[tuple[str, ...]]:
    """One row per node; the nodes inside a block follow it, indented, named by their dotted path (as the weights
    are: res_block_1.conv2d_1), its ports left out. A block's params and MACs are its totals."""
    rows = []
    for nid in analysis.order:
        info = analysis.nodes[nid]
        if depth and info.type in ("BlockInput", "BlockOutput"):
            continue
        if info.outputs is not None and len(info.outputs) > 1:
            shape = ", ".join(fmt(t.shape) for t in info.outputs)
        else:
            shape = fmt(info.shape) if info.shape is not None else "—"
        error = "" if info.error is None or (depth and info.waiting) else str(info.error)
        rows.append(("  " * depth + prefix + nid, info.type, shape, f"{info.params:,d}", format_count(info.macs),
                     error))
        if info.inner is not None:
            rows += _rows(info.inner, depth + 1, f"{prefix}{nid}.")
    return rows


def summary_table(analysis: Analysis, title: str = "") -> str:
    rows = [("name", "type", "output shape", "params", "MACs", "error")]
    rows += _rows(analysis)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [title] if title else []
    for i, r in enumerate(rows):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]),
                 r[3].rjust(widths[3]), r[4].rjust(widths[4])]
        lines.append("  ".join(cells + ([r[5]] if r[5] else [])).rstrip())
        if i == 0:
            lines.append("-" * (sum(widths) + 8))
    lines.append("-" * (sum(widths) + 8))
    lines.append(f"total: {analysis.total_params:,d} parameters, {format_count(analysis.total_macs)} MACs and "
                 f"{format_bytes(analysis.total_memory)} of activations per sample")
    return "\n".join(lines)


def _json_nodes(analysis: Analysis) -> list[dict]:
    nodes = []
    for nid in analysis.order:
        info = analysis.nodes[nid]
        node = {"id": nid, "type": info.type, "shape": list(info.shape) if info.shape is not None else None,
                "params": info.params, "macs": info.macs, "memory": info.memory,
                "error": str(info.error) if info.error else None}
        if info.outputs is not None and len(info.outputs) > 1:
            node["outputs"] = [list(t.shape) for t in info.outputs]
        if info.inner is not None:  # a block: its params, MACs and memory are the totals of these
            node["inner"] = _json_nodes(info.inner)
        nodes.append(node)
    return nodes


def summary_json(analysis: Analysis) -> dict:
    nodes = _json_nodes(analysis)
    return {"nodes": nodes, "total_params": analysis.total_params, "total_macs": analysis.total_macs,
            "total_memory": analysis.total_memory, "ok": analysis.ok}


def _project_path(arg: str) -> Path:
    """A project path, or the name of a bundled template (`cnn_mnist`) when no such file exists."""
    path = Path(arg)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        from .templates import template_names, template_path
        if arg in template_names():
            return template_path(arg)
    return path


def _loss_advice(project, analysis: Analysis) -> list[str]:
    """Advice on whether the chosen loss fits the network's output (e.g. Softmax before CrossEntropy)."""
    if not project.loss or len(project.graph.sink_nodes()) != 1:
        return []
    from .losses import check_loss_fit
    sink = project.graph.sink_nodes()[0]
    return check_loss_fit(project.loss["type"], analysis.nodes[sink].shape, project.graph.nodes[sink].type)


TRUST_HELP = ("run the project's custom layers (Python code in the project file) without asking: only for "
              "projects you trust, since code can do anything your account can")


def _trust(args: argparse.Namespace) -> None:
    """--trust-custom-code: every custom layer may run in this process."""
    if getattr(args, "trust_custom_code", False):
        from .custom import set_trust_all
        set_trust_all(True)


def cmd_summary(args: argparse.Namespace) -> int:
    _trust(args)
    try:
        project = load_project(_project_path(args.project))
    except ProjectError as e:
        print(f"layerloom: cannot open the project: {e}", file=sys.stderr)
        return EXIT_BAD_FILE
    analysis = analyze(project.graph)
    if args.json:
        print(json.dumps(summary_json(analysis), indent=2))
    else:
        name = project.name or Path(args.project).stem
        print(summary_table(analysis, f"{name}: {project.description}" if project.description else name))
    if analysis.ok and not args.json:
        for note in _loss_advice(project, analysis):
            print(f"note: {note}")
    if not analysis.ok:
        errors = analysis.errors
        if not errors and not analysis.nodes:
            print("layerloom: the graph is empty: add an Input and some layers", file=sys.stderr)
        for info in errors:
            print(f"layerloom: {info.node_id} ({info.type}): {info.error}", file=sys.stderr)
        return EXIT_GRAPH_ERRORS
    return EXIT_OK


def cmd_layers(args: argparse.Namespace) -> int:
    """The catalogue by category, or one layer's full explanation."""
    from .layers import by_category, get_spec
    if args.type:
        for para in get_spec(args.type).explain().split("\n"):
            print(textwrap.fill(para, width=100, subsequent_indent="    " if para.startswith("  ") else ""))
        return EXIT_OK
    for category, specs in by_category().items():
        if not specs:
            continue
        print(f"{category}:")
        width = max(len(s.type) for s in specs)
        for s in specs:
            print(f"  {s.type.ljust(width)}  {s.summary}")
    print("\nDetails of one layer: layerloom layers TYPE")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    """Train a project headless; under torchrun (or with --nproc) on several processes."""
    _trust(args)  # under torchrun each process reads the flag from the same command line
    from . import train_cli
    return train_cli.run(args)


def _format_value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _format_params(params: dict) -> str:
    return "  ".join(f"{k}={_format_value(v)}" for k, v in params.items()) or "(no values)"


def _search_spec(args: argparse.Namespace, project) -> dict:
    """The project's "search" section (or --spec FILE's) with the command line's overrides."""
    from .search import SearchError
    if args.spec:
        try:
            spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SearchError(f"cannot read the search settings from {args.spec}: {e}") from None
    else:
        spec = project.extra.get("search")
        if spec is None:
            raise SearchError("this project has no search settings: add a \"search\" section with a \"space\" "
                              "list to the project file, or give them with --spec FILE.json")
    if not isinstance(spec, dict):
        raise SearchError(f"the search settings must be a JSON object, not {spec!r}")
    spec = dict(spec)
    for key in ("trials", "method", "epochs", "seed", "metric"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    return spec


def cmd_search(args: argparse.Namespace) -> int:
    """Search hyper-parameters with Optuna: one line per trial, the best at the end, saved beside the project."""
    import signal

    from .project import save_project
    from .search import apply_params, run_search, save_search, validate_spec
    from .templates import templates_dir
    project_path = _project_path(args.project)
    try:
        project = load_project(project_path)
    except ProjectError as e:
        print(f"layerloom: cannot open the project: {e}", file=sys.stderr)
        return EXIT_BAD_FILE
    if args.workers < 1:
        print(f"layerloom: --workers must be 1 or more, not {args.workers}", file=sys.stderr)
        return EXIT_GRAPH_ERRORS
    bundled = project_path.resolve().parent == templates_dir().resolve()
    out = Path(args.out) if args.out else None
    if args.apply and out is None and bundled:
        print("layerloom: a bundled template cannot be changed: give -o NEW.layerloom to write the best values "
              "into a copy", file=sys.stderr)
        return EXIT_GRAPH_ERRORS
    stopping: list[bool] = []

    def on_interrupt(signum, frame):
        if stopping:
            raise KeyboardInterrupt
        stopping.append(True)
        print("stopping after the current epoch (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    def on_trial(t: dict) -> None:
        value = "—" if t["value"] is None else f"{t['value']:.4f}"
        line = f"trial {t['number']:>3}  {t['state']:<8}  value {value:<8}  {t['seconds']:6.1f} s  " \
               f"{_format_params(t['params'])}"
        if t["state"] == "failed" and t["message"]:
            line += f"\n           {t['message']}"
        print(line, flush=True)

    try:
        spec = _search_spec(args, project)
        checked = validate_spec(project, spec)
        extra = f", {args.workers} workers" if args.workers > 1 else ""
        epochs = checked["epochs"] or (project.training or {}).get("epochs", 10)
        print(f"searching {project.name or project_path.stem}: {checked['method']}, {checked['trials']} trials of "
              f"{epochs} epochs{extra}", flush=True)
        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            result = run_search(project, spec, base_dir=project_path.parent, on_trial=on_trial,
                                should_stop=lambda: bool(stopping), workers=args.workers)
        finally:
            signal.signal(signal.SIGINT, previous)
    except LayerLoomError as e:  # a wrong search space (SearchError), data that cannot load, a broken graph ...
        print(f"layerloom: cannot search: {e}", file=sys.stderr)
        return EXIT_GRAPH_ERRORS
    counts = result.counts()
    print(f"{len(result.trials)} trials in {result.seconds:.1f} s: {counts['complete']} complete, "
          f"{counts['pruned']} pruned, {counts['failed']} failed" + (" (stopped)" if result.stopped else ""))
    for note in result.notes:
        print(f"note: {note}")
    if not args.no_save:
        where = Path.cwd() if bundled else project_path
        print(f"saved: {save_search(result, where)}")
    best = result.best
    if best is None:
        print("layerloom: no trial completed, so there is no best: see the messages above", file=sys.stderr)
        return 130 if stopping else EXIT_GRAPH_ERRORS
    print(f"best: trial {best['number']}, {result.metric} {best['value']:.4f}: {_format_params(best['params'])}")
    if args.apply or out is not None:
        target = out or project_path
        try:
            save_project(target, apply_params(project, best["params"]))
        except LayerLoomError as e:
            print(f"layerloom: cannot write the best values: {e}", file=sys.stderr)
            return EXIT_GRAPH_ERRORS
        print(f"wrote the best values into {target}")
    return 130 if stopping else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Export a project's network (with trained weights) and check the written file against PyTorch."""
    from .export import SUFFIXES, ExportError, export_model  # torch is imported only when exporting
    _trust(args)
    fmt = args.format or SUFFIXES.get(Path(args.out).suffix.lower())
    if fmt is None:
        print(f"layerloom: cannot export: give --format (safetensors, onnx, pt2, torchscript, python or int8); "
              f"it cannot be told from the name {args.out}", file=sys.stderr)
        return EXIT_GRAPH_ERRORS
    project_path = _project_path(args.project)
    try:
        project = load_project(project_path)
    except ProjectError as e:
        print(f"layerloom: cannot open the project: {e}", file=sys.stderr)
        return EXIT_BAD_FILE
    try:  # int8 scores the network on the project's data, whose relative paths start at the project's folder
        report = export_model(project, args.weights, fmt, args.out, batch_size=args.batch_size,
                              base_dir=project_path.parent)
    except ExportError as e:
        hint = " (run again with --verbose to see the exporter's own output)" if e.details and not args.verbose else ""
        print(f"layerloom: cannot export: {e}{hint}", file=sys.stderr)
        if e.details and args.verbose:
            print(f"exporter output:\n{e.details}", file=sys.stderr)
        return EXIT_GRAPH_ERRORS
    print(f"exported {project.name or Path(args.project).stem}")
    for line in report.lines():
        print(f"  {line}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """Import an ONNX model as a project of catalogue layers, its weights beside it, checked against onnxruntime."""
    from .onnx_import import UNREADABLE, OnnxImportError, import_onnx  # ONNX and torch load only when importing
    try:
        result = import_onnx(args.model, args.out, overwrite=args.force, name=args.name)
    except OnnxImportError as e:
        print(f"layerloom: cannot import: {e}", file=sys.stderr)
        return EXIT_BAD_FILE if e.kind == UNREADABLE else EXIT_GRAPH_ERRORS
    print(f"imported {result.project.name}")
    for line in result.lines():
        print(f"  {line}")
    print(f"next: layerloom summary {result.project_path}; layerloom export {result.project_path} "
          f"--weights {result.weights_path} -o …")
    return EXIT_OK


def cmd_default(args: argparse.Namespace) -> int:
    """With no subcommand: until the window exists, show the summary of a bundled template."""
    from .templates import template_names, template_path
    name = "cnn_mnist"
    print(f"LayerLoom — templates: {', '.join(template_names())}\n")
    ns = argparse.Namespace(project=str(template_path(name)), json=False)
    code = cmd_summary(ns)
    print("\nTry: layerloom summary resources/templates/<name>.layerloom [--json]")
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layerloom", description="Build, train and export PyTorch models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("summary", help="per-node shapes, parameters and MACs of a project",
                       description="Print a table per node (name, type, output shape, params, MACs, error) with "
                                   "totals. Exit status 1 when the graph cannot work, 2 when the file cannot be read.")
    p.add_argument("project", help="a .layerloom project file, or a template name such as cnn_mnist")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--trust-custom-code", action="store_true", help=TRUST_HELP)
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("train", help="train a project headless (several processes with --nproc or torchrun)",
                       description="Train the project's network on its data with its loss and optimizer. Writes the "
                                   "history (CSV and JSON), the final and best weights (safetensors) and checkpoints "
                                   "into the output folder. Ctrl-C stops after the current step and leaves a "
                                   "checkpoint to --resume from.")
    p.add_argument("project", help="a .layerloom project file, or a template name such as cnn_mnist")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the project's)")
    p.add_argument("--batch-size", type=int, help="samples per step (default: the project's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's in the project)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same run")
    p.add_argument("--out", help="output folder (default runs/NAME-DATE-TIME)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="a checkpoint folder to continue from")
    p.add_argument("--nproc", type=int, help="train on N processes with DistributedDataParallel (via torchrun)")
    p.add_argument("--quiet", action="store_true", help="print only the final result")
    p.add_argument("--coach", action="store_true", help="say what goes wrong while it trains (dead ReLUs, vanishing "
                   "or exploding gradients, overfitting, a learning rate too high or too low) and what cures it")
    p.add_argument("--trust-custom-code", action="store_true", help=TRUST_HELP)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("search", help="search hyper-parameters (learning rate, batch size, layer sizes ...) with "
                                      "Optuna",
                       description="Try many settings of the project, as its \"search\" section describes (or "
                                   "--spec FILE.json): each trial trains a copy for a few epochs and reports its "
                                   "metric; hopeless trials are pruned early. Prints a line per trial and the best, "
                                   "and saves the search as JSON in runs/searches beside the project. Exit status 0 "
                                   "when a trial completed, 1 when the search cannot run or none completed, 2 when "
                                   "the project cannot be read, 130 when stopped by Ctrl-C.")
    p.add_argument("project", help="a .layerloom project file, or a template name such as cnn_mnist")
    p.add_argument("--trials", type=int, help="how many trials (default: the project's, or 20; a grid: all of it)")
    p.add_argument("--method", choices=("grid", "random", "bayes"), help="grid, random or bayes (Optuna's TPE; "
                                                                         "the default)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the search's, else the project's)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the trials (default 1)")
    p.add_argument("--seed", type=int, help="seed of the sampler: the same seed tries the same values")
    p.add_argument("--metric", help="the figure to optimise: val_loss, val_acc, loss, acc, ... (default auto)")
    p.add_argument("--spec", metavar="FILE", help="a JSON file with the search settings, instead of the project's")
    p.add_argument("--apply", action="store_true", help="write the best values into the project")
    p.add_argument("-o", "--out", help="write the project with the best values to this file instead (implies "
                                       "--apply)")
    p.add_argument("--no-save", action="store_true", help="do not save the search in runs/searches")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("export", help="export a network as safetensors, ONNX, torch.export (.pt2), TorchScript, "
                                      "PyTorch code or int8",
                       description="Write the project's network with its weights, then read the file back and run "
                                   "it against PyTorch (onnxruntime for ONNX, on two batch sizes for the dynamic "
                                   "batch axis). int8 quantises the Linear, LSTM and GRU layers (ONNX for a .onnx "
                                   "name, TorchScript otherwise) and reports size and accuracy before and after on "
                                   "the project's validation data. Exit status 0 when the export passed its check, "
                                   "1 when it cannot be made or does not match, 2 when the project cannot be read.")
    p.add_argument("project", help="a .layerloom project file, or a template name such as cnn_mnist")
    p.add_argument("--weights", help="a .safetensors file (e.g. final.safetensors from `layerloom train`); "
                                     "without it the freshly initialised, untrained network is exported")
    p.add_argument("--format", metavar="{safetensors,onnx,pt2,torchscript,python,int8}",
                   help="what to write (default: from the output's suffix: .safetensors, .onnx, .pt2, .ts, .py); "
                        "python writes a standalone PyTorch script of the network; int8 a dynamically quantised "
                        "one (e.g. -o model.int8.ts, or model.int8.onnx for onnxruntime)")
    p.add_argument("-o", "--out", required=True, help="the file to write, e.g. model.onnx")
    p.add_argument("--batch-size", type=int, default=2, help="samples in the check batch (default 2)")
    p.add_argument("--verbose", action="store_true", help="on failure, also print the exporter's own output")
    p.add_argument("--trust-custom-code", action="store_true", help=TRUST_HELP)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", help="import an ONNX model as a project (layers, weights and layout)",
                       description="Map the ONNX operators to catalogue layers, write the project with its graph laid "
                                   "out and its weights beside it (PROJECT.safetensors), after checking the imported "
                                   "network against onnxruntime on a random batch. Exit status 0 when imported, 1 "
                                   "when an operator has no layer, the check fails or a file would be replaced, 2 "
                                   "when the file is not ONNX or refers to data outside its folder.")
    p.add_argument("model", help="the .onnx file to import")
    p.add_argument("-o", "--out", required=True, help="the project to write, e.g. model.layerloom (the weights go "
                                                      "beside it as model.safetensors)")
    p.add_argument("--name", help="the project's name (default: the project file's name)")
    p.add_argument("--force", action="store_true", help="replace the project and weights files if they exist")
    p.set_defaults(func=cmd_import)
    from .transfer import add_transfer_parser
    add_transfer_parser(sub)
    p = sub.add_parser("layers", help="the layer catalogue, or the explanation of one layer")
    p.add_argument("type", nargs="?", help="a layer type, e.g. Conv2d")
    p.set_defaults(func=cmd_layers)
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a console that cannot show ×, —, → or ≥ gets \u escapes, not a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # `train --nproc` hands them on to torchrun
    func = getattr(args, "func", cmd_default)
    try:
        return func(args)
    except LayerLoomError as e:
        print(f"layerloom: {e}", file=sys.stderr)
        return EXIT_BAD_FILE
    except KeyboardInterrupt:
        print("layerloom: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
