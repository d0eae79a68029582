"""FedMosaic — the Streamlit entry: a router over the pages (placeholder home until the app lands)."""

import streamlit as st

st.set_page_config(page_title="FedMosaic", layout="wide")
st.title("FedMosaic")
st.write("Design, run and compare federated-learning experiments with heterogeneous clients.")
