"""The user-table path: reading a file (`reading`), typing its columns (`infer`), their roles and
shaping (`columns`), the target (`target`), encoding (`encode`) and the `csv` dataset (`dataset`)."""
