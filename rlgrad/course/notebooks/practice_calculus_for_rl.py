import marimo

app = marimo.App(width="medium")


@app.cell
def _():
    import marimo as mo

    mo.md("# Placeholder: this chapter is being written.")
    return


if __name__ == "__main__":
    app.run()
