"""What a run's figures become for people: tables (:mod:`.tables`), charts (:mod:`.charts`, the one
colour language), the verdict against training alone (:mod:`.verdict`), the HTML report
(:mod:`.report`), the export formats, each with its renderer (:mod:`.export`), and what the
Runs, Results and Compare pages read (:mod:`.results`)."""
