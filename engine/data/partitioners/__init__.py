"""The registered partitioners (ways of splitting rows across clients), one file each;
`engine.data` imports every module here."""
