import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="rlgrad: the course module E.3")


@app.cell
def _():
    import marimo as mo

    from rlgrad.course import CHAPTERS

    return CHAPTERS, mo


@app.cell
def _(CHAPTERS, mo):
    _rows = "\n".join(f"| {each.section} | [{each.title}]({each.slug}/) |" for each in CHAPTERS)
    mo.md(
        f"""
<h1 id="course-home">Calculus and optimization for RL — course module E.3</h1>

Five interactive pages, in the course's order. Each one follows a page of the course: its
formulas, its worked numbers and its exercises, with the numbers computed live by
[rlgrad](https://github.com/rlgrad/rlgrad)'s own functions. Move a slider and every number
that depends on it is recomputed; type an answer to an exercise and the page checks it.

| page | what it covers |
|:---|:---|
{_rows}

Each page is a plain Python file (a [marimo](https://marimo.io) notebook): `rlgrad course
--list` prints where they are, `python FILE` runs one as a script and `marimo edit FILE` opens
one for editing.
"""
    )
    return


if __name__ == "__main__":
    app.run()
