// Copy buttons: <button data-copy="#input-id"> copies that input's value.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  const status = document.getElementById("copy-status");
  try {
    await navigator.clipboard.writeText(input.value);
    if (status) status.textContent = "Copied.";
  } catch {
    input.select();  // no clipboard permission (plain HTTP): select it for Ctrl+C
    if (status) status.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
  }
});
