// Every label of the dashboard, one row a key: [key, English, Chinese]. The choice
// persists in localStorage.
const LANGS = ["en", "zh"];
const LABELS = [
  ["title", "shopfloor", "shopfloor 车间监控"],
  ["nav_plant", "Plant overview", "工厂总览"],
  ["nav_cluster", "Cluster", "集群对比"],
  ["api_docs", "API", "接口"],
  ["lang_switch", "中文", "English"],
  ["shift", "Shift", "班次"],
  ["no_shift", "no shift (last 8 h shown)", "非班次时间（显示最近 8 小时）"],
  ["since", "since", "自"],
  ["window", "Window", "时间范围"],
  ["window_shift", "current shift", "当前班次"],
  ["window_1h", "last hour", "最近 1 小时"],
  ["window_8h", "last 8 hours", "最近 8 小时"],
  ["window_7d", "last 7 days", "最近 7 天"],
  ["window_30d", "last 30 days", "最近 30 天"],
  ["oee", "OEE", "设备综合效率"],
  ["availability", "Availability", "时间开动率"],
  ["performance", "Performance", "性能开动率"],
  ["quality", "Quality", "合格品率"],
  ["parts", "Parts", "产量"],
  ["good", "Good", "合格品"],
  ["rejects", "Rejects", "不合格品"],
  ["state", "State", "状态"],
  ["equipment", "Equipment", "设备"],
  ["line", "Line", "产线"],
  ["plant_total", "Plant total", "全厂合计"],
  ["line_total", "Line total", "产线合计"],
  ["machines", "Machines", "设备"],
  ["open", "open", "查看"],
  ["live", "live", "实时"],
  ["reconnecting", "reconnecting …", "正在重新连接 …"],
  ["state_PRODUCING", "Producing", "生产"],
  ["state_IDLE", "Idle", "空闲"],
  ["state_DOWN", "Down", "故障停机"],
  ["state_SETUP", "Setup", "换型调整"],
  ["state_PLANNED_STOP", "Planned stop", "计划停机"],
  ["state_NO_SHIFT", "No shift", "非班次"],
  ["state_OFFLINE", "Offline", "离线"],
  ["timeline", "State timeline", "状态时间线"],
  ["losses", "Six big losses", "六大损失"],
  ["trend_1h", "Trend by hour", "按小时趋势"],
  ["trend_day", "Trend by day", "按天趋势"],
  ["timeline_last_day", "the last 24 hours of the window", "时间范围内最近 24 小时"],
  ["trend_shift", "Trend by shift", "按班次趋势"],
  ["no_calendar", "no shift calendar configured: trend by day", "未配置班次日历：按天显示趋势"],
  ["loss_failures", "Failures", "故障损失"],
  ["loss_setups", "Setup & adjustment", "换型调整损失"],
  ["loss_small_stops", "Small stops & idling", "小停机与空转"],
  ["loss_slow_cycles", "Slow cycles", "速度降低"],
  ["loss_process_rejects", "Process rejects", "生产不良"],
  ["loss_startup_rejects", "Start-up rejects", "开机不良"],
  ["planned_busy_time", "Planned busy time", "计划运行时间"],
  ["fully_productive_time", "Fully productive time", "完全有效生产时间"],
  ["seconds", "s", "秒"],
  ["minutes", "min", "分钟"],
  ["cluster_title", "Enterprises compared", "企业对比"],
  ["enterprise", "Enterprise", "企业"],
  ["rank", "Rank", "排名"],
  ["pooled", "Cluster (pooled)", "集群（合并计算）"],
  ["mean_of_enterprises", "Mean of enterprises", "企业平均"],
  ["published", "Published figures", "公开发布数据"],
  ["region", "Region", "地区"],
  ["as_of", "As of", "时间"],
  ["source", "Source", "来源"],
  ["metric_equipment_digitalization_rate", "Equipment digitalization rate", "生产设备数字化率"],
  ["metric_networking_rate", "Networking rate", "设备联网率"],
  ["metric_key_process_nc_rate", "Key-process NC rate", "关键工序数控化率"],
  ["metric_oee", "OEE (current shift)", "设备综合效率（当前班次）"],
  ["none_published", "no published figure", "暂无公开数据"],
  ["measured", "Measured", "实测"],
  ["token_prompt", "This server needs an API token (read scope):", "此服务器需要访问令牌（读取权限）："],
  ["error", "Could not load", "无法加载"],
];
const STRINGS = Object.fromEntries(LANGS.map((l, i) => [
  l, Object.fromEntries(LABELS.map(row => [row[0], row[i + 1]]))]));

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
