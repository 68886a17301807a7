// Every label of the dashboard, in English and Chinese. The choice persists in localStorage.
const STRINGS = {
  en: {
    title: "shopfloor",
    nav_plant: "Plant overview", nav_cluster: "Cluster", api_docs: "API",
    lang_switch: "中文",
    shift: "Shift", no_shift: "no shift (last 8 h shown)", since: "since",
    window: "Window", window_shift: "current shift", window_1h: "last hour", window_8h: "last 8 hours",
    oee: "OEE", availability: "Availability", performance: "Performance", quality: "Quality",
    parts: "Parts", good: "Good", rejects: "Rejects", state: "State",
    equipment: "Equipment", line: "Line", plant_total: "Plant total", line_total: "Line total",
    machines: "Machines", open: "open",
    live: "live", reconnecting: "reconnecting …",
    state_PRODUCING: "Producing", state_IDLE: "Idle", state_DOWN: "Down", state_SETUP: "Setup",
    state_PLANNED_STOP: "Planned stop", state_NO_SHIFT: "No shift", state_OFFLINE: "Offline",
    timeline: "State timeline", losses: "Six big losses", trend_1h: "Trend by hour",
    trend_shift: "Trend by shift", no_calendar: "no shift calendar configured: trend by day",
    loss_failures: "Failures", loss_setups: "Setup & adjustment", loss_small_stops: "Small stops & idling",
    loss_slow_cycles: "Slow cycles", loss_process_rejects: "Process rejects",
    loss_startup_rejects: "Start-up rejects",
    planned_busy_time: "Planned busy time", fully_productive_time: "Fully productive time",
    seconds: "s", minutes: "min",
    cluster_title: "Enterprises compared", enterprise: "Enterprise", rank: "Rank",
    pooled: "Cluster (pooled)", mean_of_enterprises: "Mean of enterprises",
    published: "Published figures", region: "Region", as_of: "As of", source: "Source",
    metric_equipment_digitalization_rate: "Equipment digitalization rate",
    metric_networking_rate: "Networking rate",
    metric_key_process_nc_rate: "Key-process NC rate",
    metric_oee: "OEE (current shift)",
    none_published: "no published figure", measured: "Measured",
    token_prompt: "This server needs an API token (read scope):",
    error: "Could not load",
  },
  zh: {
    title: "shopfloor 车间监控",
    nav_plant: "工厂总览", nav_cluster: "集群对比", api_docs: "接口",
    lang_switch: "English",
    shift: "班次", no_shift: "非班次时间（显示最近 8 小时）", since: "自",
    window: "时间范围", window_shift: "当前班次", window_1h: "最近 1 小时", window_8h: "最近 8 小时",
    oee: "设备综合效率", availability: "时间开动率", performance: "性能开动率", quality: "合格品率",
    parts: "产量", good: "合格品", rejects: "不合格品", state: "状态",
    equipment: "设备", line: "产线", plant_total: "全厂合计", line_total: "产线合计",
    machines: "设备", open: "查看",
    live: "实时", reconnecting: "正在重新连接 …",
    state_PRODUCING: "生产", state_IDLE: "空闲", state_DOWN: "故障停机", state_SETUP: "换型调整",
    state_PLANNED_STOP: "计划停机", state_NO_SHIFT: "非班次", state_OFFLINE: "离线",
    timeline: "状态时间线", losses: "六大损失", trend_1h: "按小时趋势",
    trend_shift: "按班次趋势", no_calendar: "未配置班次日历：按天显示趋势",
    loss_failures: "故障损失", loss_setups: "换型调整损失", loss_small_stops: "小停机与空转",
    loss_slow_cycles: "速度降低", loss_process_rejects: "生产不良",
    loss_startup_rejects: "开机不良",
    planned_busy_time: "计划运行时间", fully_productive_time: "完全有效生产时间",
    seconds: "秒", minutes: "分钟",
    cluster_title: "企业对比", enterprise: "企业", rank: "排名",
    pooled: "集群（合并计算）", mean_of_enterprises: "企业平均",
    published: "公开发布数据", region: "地区", as_of: "时间", source: "来源",
    metric_equipment_digitalization_rate: "生产设备数字化率",
    metric_networking_rate: "设备联网率",
    metric_key_process_nc_rate: "关键工序数控化率",
    metric_oee: "设备综合效率（当前班次）",
    none_published: "暂无公开数据", measured: "实测",
    token_prompt: "此服务器需要访问令牌（读取权限）：",
    error: "无法加载",
  },
};

const KEY = "shopfloor.lang";
let lang = localStorage.getItem(KEY) in STRINGS ? localStorage.getItem(KEY)
  : (navigator.language || "").startsWith("zh") ? "zh" : "en";

export const getLang = () => lang;

export function t(key) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key];
  if (s === undefined) console.warn("no label", key);
  return s ?? key;
}

export function setLang(next) {
  lang = next in STRINGS ? next : "en";
  localStorage.setItem(KEY, lang);
  translate(document);
}

// Fill every element carrying data-i18n="key" with its label.
export function translate(root) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  root.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t(el.dataset.i18n); });
}
