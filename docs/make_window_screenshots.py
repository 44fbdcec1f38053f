"""README screenshots of the window at a laptop's 1366×768, taken from the real window (offscreen):
the welcome screen in the light and the dark theme, and the MiniLM sample with the shipped
SVD + int8 recipe marked (the Plan column, the what-if budget, one planned layer's details).

    QT_QPA_PLATFORM=offscreen python docs/make_window_screenshots.py      # or: make screenshots
"""

from __future__ import annotations

from shots import application, main_window, save, wait

# what a user who has been here before sees under "Recent" (illustrative paths)
RECENT = (("sample:minilm-sentiment", None), ("~/models/efficientnet_lite0.py:Net", "~/models/lite0.safetensors"),
          ("~/models/bert-base-uncased/", None))


def main() -> None:
    app = application()
    from studio.core.base.resources import resource
    from studio.core.model.loaders import LoadRequest
    from studio.core.plan import CompressionPlan
    from studio.gui.qt_resources import add_recent_source
    from studio.gui.qt_theme import apply_theme

    for source, weights in reversed(RECENT):
        add_recent_source(source, weights)
    apply_theme(app, "light")
    window = main_window()
    save(window, "screenshot-welcome.png")
    apply_theme(app, "dark")
    save(window, "screenshot-welcome-dark.png")
    apply_theme(app, "light")

    window.open_source(LoadRequest("sample:minilm-sentiment"))
    wait(lambda: window.opened is not None and not window.runner.busy)
    window.plan.document.set_plan(CompressionPlan.load(resource("recipes", "minilm-svd-int8.yaml")))
    tree, layers = window.opened.tree, window.layers
    for name in ("bert", "bert.encoder", "bert.encoder.layer", "bert.encoder.layer.0",
                 "bert.encoder.layer.0.intermediate", "bert.encoder.layer.0.output"):
        layers.view.expand(layers.proxy.mapFromSource(layers.model.index_of(tree[name])))
    chosen = layers.proxy.mapFromSource(layers.model.index_of(tree["bert.encoder.layer.0.intermediate.dense"]))
    layers.view.setCurrentIndex(chosen)
    layers.view.scrollTo(chosen)
    save(window, "screenshot-minilm.png")
    window.close()


if __name__ == "__main__":
    main()
