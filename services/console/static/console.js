// Photo and video uploads with a progress bar: each file goes to the console's /upload,
// which streams it on to the media service; the stored id joins the story's media list.
"use strict";

function setupUploads(fieldset) {
  const form = fieldset.closest("form");
  const hidden = fieldset.querySelector('input[name="media_ids"]');
  const picker = fieldset.querySelector(".picker");
  const thumbs = fieldset.querySelector(".thumbs");
  const list = fieldset.querySelector(".progress-list");
  const submit = form.querySelector('button[type="submit"]');
  let pending = 0;

  const ids = () => hidden.value.split(",").filter(Boolean);
  const setIds = (values) => { hidden.value = values.join(","); };
  const refresh = () => {
    submit.disabled = pending > 0;
    submit.dataset.pending = String(pending);
  };

  function addThumb(id) {
    const figure = document.createElement("figure");
    figure.dataset.media = id;
    const img = document.createElement("img");
    img.src = "/media/" + encodeURIComponent(id) + "/thumbnail";
    img.alt = "已上传图片";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link remove";
    remove.textContent = "移除";
    figure.append(img, remove);
    thumbs.append(figure);
  }

  thumbs.addEventListener("click", (event) => {
    if (!event.target.classList.contains("remove")) return;
    const figure = event.target.closest("figure");
    setIds(ids().filter((id) => id !== figure.dataset.media));
    figure.remove();
  });

  function upload(file) {
    const row = document.createElement("div");
    row.className = "upload";
    const name = document.createElement("span");
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = "上传中 0%";
    row.append(name, bar, state);
    list.append(row);

    const data = new FormData();
    data.append("unit", fieldset.dataset.unit); // the media service reads the unit first
    data.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload");
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((event.loaded / event.total) * 100);
      bar.value = percent;
      state.textContent = "上传中 " + percent + "%";
    });
    xhr.addEventListener("loadend", () => {
      pending -= 1;
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = {}; }
      if (xhr.status === 200 || xhr.status === 201) {
        bar.value = 100;
        state.textContent = xhr.status === 200 ? "已上传（重复文件）" : "已上传";
        row.classList.add("done");
        if (!ids().includes(answer.id)) {
          setIds(ids().concat([answer.id]));
          addThumb(answer.id);
        }
      } else {
        row.classList.add("failed");
        state.textContent = "上传失败：" + (answer.detail || xhr.statusText || "网络错误");
      }
      refresh();
    });
    pending += 1;
    refresh();
    xhr.send(data);
  }

  picker.addEventListener("change", () => {
    Array.from(picker.files).forEach(upload);
    picker.value = "";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("fieldset.uploads").forEach(setupUploads);
});
