// The console's few scripts: uploads with a progress bar, length counters on the story
// form, confirmations before an irreversible step, and the counts of what is waiting,
// asked for again every few seconds so new work shows without reloading (and, when the
// person allows it, as a desktop notice).
"use strict";

function setupUploads(fieldset) {
  const form = fieldset.closest("form");
  const hidden = fieldset.querySelector('input[name="media_ids"]');
  const picker = fieldset.querySelector(".picker");
  const thumbs = fieldset.querySelector(".thumbs");
  const list = fieldset.querySelector(".progress-list");
  const submits = form.querySelectorAll('button[type="submit"]');
  let pending = 0;

  const ids = () => hidden.value.split(",").filter(Boolean);
  const setIds = (values) => { hidden.value = values.join(","); };
  const refresh = () => {
    submits.forEach((button) => {
      button.disabled = pending > 0;
      button.dataset.pending = String(pending);
    });
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
    if (!window.confirm("确定移除这张图片（或视频）？")) return;
    const figure = event.target.closest("figure");
    setIds(ids().filter((id) => id !== figure.dataset.media));
    figure.remove();
  });

  function upload(file) {
    const row = document.createElement("div");
    row.className = "upload";
    const name = document.createElement("span");
    name.className = "file";
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
    // the form token of this sign-in, as every form carries it (see csrf.py)
    xhr.setRequestHeader("X-CSRF-Token", formToken());
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
        // a refused file must not look uploaded: the bar goes, the reason stays
        bar.remove();
        row.classList.add("failed");
        row.setAttribute("role", "alert");
        state.textContent = "上传失败：" + (answer.message || "网络错误，请重试");
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

function formToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// a choice that shows another view at once (no inline handlers: the CSP forbids them)
function setupAutosubmit() {
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
}

// "back" on an error page: a javascript: link would be an inline script
function setupBack() {
  document.querySelectorAll("a[data-back]").forEach((link) => {
    link.addEventListener("click", (event) => {
      if (window.history.length < 2) return;
      event.preventDefault();
      window.history.back();
    });
  });
}

function setupCounter(field) {
  const counter = document.querySelector('.counter[data-for="' + field.id + '"]');
  if (!counter) return;
  const min = Number(field.dataset.min || 0);
  const max = Number(field.dataset.max || Infinity);
  const update = () => {
    const length = field.value.trim().length;
    counter.textContent = String(length);
    counter.classList.toggle("outside", length < min || length > max);
  };
  field.addEventListener("input", update);
  update();
}

// forms and buttons with data-confirm ask first (不予采用, 办结, 撤稿)
function setupConfirmations() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

function showWaiting(counts) {
  document.querySelectorAll("[data-badge]").forEach((badge) => {
    const value = counts[badge.dataset.badge];
    badge.textContent = value ? String(value) : "";
    badge.hidden = !value;
  });
  document.querySelectorAll("[data-count]").forEach((slot) => {
    const value = counts[slot.dataset.count];
    if (value === undefined) return;
    if (slot.dataset.kind === "levels") {
      slot.textContent = value.map((r) => r.level + " " + r.count + " 篇").join("；");
    } else if (slot.dataset.kind === "severities") {
      slot.textContent = value.map((r) => r.name + " " + r.count + " 条").join("；");
    } else {
      slot.textContent = value === "" ? "—" : String(value);
    }
  });
}

// optional desktop notices, once the person has allowed them on the home page
const NOTICE_OF = {
  queue: (n) => "审核队列有新稿件，共 " + n + " 篇待审",
  alerts_overdue: (n) => n + " 条舆情预警已超时",
  alerts: (n) => "有新的舆情预警，未办结 " + n + " 条",
  returned: (n) => n + " 篇稿件被退回待修改",
};
let lastCounts = null;

function announce(counts) {
  if (lastCounts && "Notification" in window && Notification.permission === "granted") {
    for (const [key, say] of Object.entries(NOTICE_OF)) {
      if (typeof counts[key] === "number" && counts[key] > (lastCounts[key] || 0)) {
        new Notification("教育宣传工作平台", { body: say(counts[key]), tag: key });
      }
    }
  }
  lastCounts = counts;
}

function setupNotifications() {
  const button = document.querySelector("button.notify");
  if (!button) return;
  if (!("Notification" in window) || Notification.permission !== "default") {
    button.hidden = true;
    return;
  }
  button.addEventListener("click", () => {
    Notification.requestPermission().then(() => { button.hidden = true; });
  });
}

function pollWaiting() {
  const url = document.body.dataset.waiting;
  if (!url) return;
  const every = Number(document.body.dataset.every || 5000);
  const ask = () => {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then((response) => (response.ok ? response.json() : null))
      .then((counts) => { if (counts) { showWaiting(counts); announce(counts); } })
      .catch(() => {});
  };
  ask();
  window.setInterval(ask, every);
}

function setupUnfold() {
  document.querySelectorAll("button.unfold-ranking").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll("table.ranking.folded").forEach((t) => t.classList.remove("folded"));
      button.closest(".unfold").remove();
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setupUnfold();
  setupAutosubmit();
  setupBack();
  document.querySelectorAll("fieldset.uploads").forEach(setupUploads);
  document.querySelectorAll("[data-min]").forEach(setupCounter);
  setupConfirmations();
  setupNotifications();
  pollWaiting();
});
